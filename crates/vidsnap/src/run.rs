//! `vidsnap run RECIPE --input NAME=FILE … [--param NAME=VALUE …] --out DIR`: a recipe run on
//! this machine with no server, by the same rules (`vidsnap_domain::job`) and operations
//! (`MediaEngine::run`) as the workers; steps whose inputs are ready run side by side.
//!
//! Artefacts land in `DIR/{step}/{file}`, moved there only when their step succeeded, and
//! `DIR/job.json` describes the steps and artefacts. Exit 0 when the job succeeds, 1 when it
//! does not (job.json says why), 2 for usage errors (a bad recipe, parameters or inputs), 130
//! when interrupted.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use chrono::Utc;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use vidsnap_domain::{
    Artefact, Change, ErrorCode, Failure, InputRef, Job, JobId, JobInput, JobStatus, RecipeDoc,
    StepOutcome, StepStatus, Task, UserId, Verdict, VideoId, recipe,
};
use vidsnap_media::{MediaEngine, OpInput, OpOutput, Progress, WorkDir};

use crate::cli;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// A recipe file (JSON, as `POST /v1/jobs` takes in `recipe`) or a built-in recipe's name.
    pub recipe: String,
    /// A recipe input: NAME=FILE (repeat for several).
    #[arg(long = "input", value_name = "NAME=FILE")]
    pub inputs: Vec<String>,
    /// A recipe parameter: NAME=VALUE; VALUE is read as JSON when it parses (2.5, true), else
    /// as text (10s).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Where artefacts and job.json go.
    #[arg(long)]
    pub out: PathBuf,
    /// Print job.json to stdout at the end (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// Attempts per step where the recipe sets none, as the service's default.
const MAX_ATTEMPTS: u32 = 3;

pub(crate) async fn run(engine: MediaEngine, args: RunArgs) -> Result<ExitCode, cli::Failure> {
    let (job, files, first) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(problem) => {
            eprintln!("error[invalid-argument]: {problem}");
            return Ok(ExitCode::from(2));
        }
    };
    std::fs::create_dir_all(&args.out).map_err(|e| cli::Failure {
        code: ErrorCode::OutputFailed,
        message: format!("creating {}: {e}", args.out.display()),
    })?;
    let bars = Bars::new(&job, !args.json);
    let engine = Arc::new(engine);
    let mut runner = Runner {
        job,
        files,
        out: args.out.clone(),
        engine,
        bars,
    };
    let interrupted = tokio::select! {
        () = runner.drive(first) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    if interrupted {
        let _ = runner.job.apply(Change::Cancel, Utc::now());
    }
    runner.bars.finish();
    let report = describe(&runner.job);
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(args.out.join("job.json"), &text).map_err(|e| cli::Failure {
        code: ErrorCode::OutputFailed,
        message: format!("writing job.json: {e}"),
    })?;
    if args.json {
        // A reader that went away (`| head`) is not our failure: job.json has it all.
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), "{text}");
    } else {
        // Each step that failed, with its code, as `vidsnap frames` reports errors.
        for step in &runner.job.steps {
            if let Some(error) = step
                .last_error
                .as_ref()
                .filter(|_| matches!(step.status, StepStatus::Failed | StepStatus::Dead))
            {
                eprintln!(
                    "error[{}]: step {}: {}",
                    error.code, step.name, error.message
                );
            }
        }
        eprintln!(
            "{}: {}",
            runner.job.status,
            args.out.join("job.json").display()
        );
    }
    Ok(match runner.job.status {
        _ if interrupted => ExitCode::from(130),
        JobStatus::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// A job ready to run: the job, its input files by name, its first tasks.
type Prepared = (Job, BTreeMap<String, PathBuf>, Vec<Task>);

/// The job to run; or what is wrong with the command line.
fn prepare(args: &RunArgs) -> Result<Prepared, String> {
    let path = Path::new(&args.recipe);
    let (doc, name) = if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a recipe: {e}", path.display()))?;
        let doc = RecipeDoc::from_json(value, "recipe")
            .map_err(|p| format!("{} is not a recipe: {p}", path.display()))?;
        (doc, None)
    } else {
        let doc = recipe::builtin(&args.recipe).ok_or_else(|| {
            let known: Vec<String> = recipe::builtins()
                .into_iter()
                .filter_map(|r| r.name)
                .collect();
            format!(
                "{:?} is neither a recipe file nor a built-in recipe ({})",
                args.recipe,
                known.join(", ")
            )
        })?;
        (doc, Some(args.recipe.clone()))
    };
    let mut params = serde_json::Map::new();
    for param in &args.params {
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| format!("--param {param:?}: use NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        params.insert(key.to_owned(), value);
    }
    let checked = doc.check(&Value::Object(params.clone())).map_err(|p| {
        let lines: Vec<String> = p
            .into_fields()
            .into_iter()
            .map(|(path, message)| format!("\n  {path}: {message}"))
            .collect();
        format!("the recipe cannot run:{}", lines.concat())
    })?;
    let mut files = BTreeMap::new();
    for input in &args.inputs {
        let (key, file) = input
            .split_once('=')
            .ok_or_else(|| format!("--input {input:?}: use NAME=FILE"))?;
        if !checked.inputs.iter().any(|i| i == key) {
            return Err(format!(
                "--input {key}: the recipe has no such input (it takes {})",
                checked.inputs.join(", ")
            ));
        }
        let file = PathBuf::from(file);
        if !file.is_file() {
            return Err(format!("--input {key}: {} is not a file", file.display()));
        }
        files.insert(key.to_owned(), file);
    }
    let mut inputs = BTreeMap::new();
    for name in &checked.inputs {
        if !files.contains_key(name) {
            return Err(format!("the recipe needs --input {name}=FILE"));
        }
        inputs.insert(
            name.clone(),
            JobInput {
                video: VideoId::new(),
                uploaded: true,
            },
        );
    }
    let (job, applied) = Job::new(
        JobId::new(),
        UserId::new(),
        name,
        checked,
        Value::Object(params),
        inputs,
        None,
        MAX_ATTEMPTS,
        Utc::now(),
    );
    let first = applied.tasks.into_iter().map(|(task, _)| task).collect();
    Ok((job, files, first))
}

/// The job in progress and what its steps need.
struct Runner {
    job: Job,
    files: BTreeMap<String, PathBuf>,
    out: PathBuf,
    engine: Arc<MediaEngine>,
    bars: Bars,
}

type Finished = (Task, u32, StepOutcome);

impl Runner {
    /// Runs tasks as they become ready, until none is left.
    async fn drive(&mut self, first: Vec<Task>) {
        let mut running: JoinSet<Finished> = JoinSet::new();
        // What each run is, to fail the right step when its task panics.
        let mut runs = BTreeMap::new();
        let mut pending = first;
        loop {
            for task in pending.drain(..) {
                if let Some((id, run)) = self.spawn(task, &mut running) {
                    runs.insert(id, run);
                }
            }
            let Some(done) = running.join_next_with_id().await else {
                return;
            };
            let (task, attempt, outcome) = match done {
                Ok((id, done)) => {
                    runs.remove(&id);
                    done
                }
                // A panicking operation is a bug: that attempt fails, and is retried.
                Err(e) => {
                    let Some((task, attempt)) = runs.remove(&e.id()) else {
                        eprintln!("error[internal]: a step panicked: {e}");
                        return;
                    };
                    let failure = Failure {
                        code: ErrorCode::Internal,
                        message: format!("the step panicked (a bug): {e}"),
                    };
                    let at = Utc::now() + chrono::TimeDelta::seconds(1);
                    (task, attempt, StepOutcome::Retry { failure, at })
                }
            };
            let finish = Change::Finish {
                step: task.step.clone(),
                attempt,
                outcome,
            };
            match self.job.apply(finish, Utc::now()) {
                Ok(applied) => {
                    self.bars.update(&self.job);
                    for (task, at) in applied.tasks {
                        let wait = (at - Utc::now()).to_std().unwrap_or_default();
                        if !wait.is_zero() {
                            tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
                        }
                        pending.push(task);
                    }
                }
                Err(e) => {
                    eprintln!("error[internal]: {e}");
                    return;
                }
            }
        }
    }

    /// Starts `task`'s step; its run's task id, task and run number, when it started.
    fn spawn(
        &mut self,
        task: Task,
        running: &mut JoinSet<Finished>,
    ) -> Option<(tokio::task::Id, (Task, u32))> {
        let start = Change::Start {
            task: task.clone(),
            worker: "vidsnap run".to_owned(),
            lease_until: Utc::now() + chrono::TimeDelta::days(1),
        };
        let attempt = match self.job.apply(start, Utc::now()).map(|a| a.verdict) {
            Ok(Verdict::Started { attempt }) => attempt,
            _ => return None,
        };
        self.bars.update(&self.job);
        let spec = self.job.recipe.step(&task.step).cloned()?;
        let mut inputs = Vec::new();
        for input in &spec.inputs {
            let (path, file_name) = match input {
                InputRef::Job(name) => {
                    let path = self.files[name].clone();
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (path, name)
                }
                InputRef::Artefact { step, artefact } => {
                    let found = self
                        .job
                        .step(step)
                        .and_then(|s| s.artefacts.iter().find(|a| &a.name == artefact));
                    let found = found?;
                    let name = found.key.rsplit('/').next().unwrap_or_default().to_owned();
                    (self.out.join(&found.key), name)
                }
            };
            inputs.push(OpInput { path, file_name });
        }
        let engine = Arc::clone(&self.engine);
        let out = self.out.clone();
        let bar = self.bars.bar(&task.step);
        let run = (task.clone(), attempt);
        let handle = running.spawn(async move {
            let outcome = run_step(&engine, &spec.op, &inputs, &out, &task.step, &bar).await;
            (task, attempt, outcome)
        });
        Some((handle.id(), run))
    }
}

/// Runs one attempt; artefacts are moved to `out/{step}/` only on success.
async fn run_step(
    engine: &MediaEngine,
    op: &vidsnap_domain::Operation,
    inputs: &[OpInput],
    out: &Path,
    step: &str,
    progress: &StepBar,
) -> StepOutcome {
    let scratch = match WorkDir::create(engine.config().temp_dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => return retry(e.code(), e.to_string()),
    };
    let output = match engine.run(op, inputs, scratch.path(), progress).await {
        Ok(output) => output,
        Err(e) if e.is_retryable() => return retry(e.code(), e.to_string()),
        Err(e) => {
            return StepOutcome::Abort {
                failure: Failure {
                    code: e.code(),
                    message: e.to_string(),
                },
            };
        }
    };
    match publish(output, out, step).await {
        Ok((artefacts, result)) => StepOutcome::Succeeded { artefacts, result },
        Err(e) => retry(ErrorCode::OutputFailed, format!("storing artefacts: {e}")),
    }
}

fn retry(code: ErrorCode, message: String) -> StepOutcome {
    StepOutcome::Retry {
        failure: Failure { code, message },
        at: Utc::now() + chrono::TimeDelta::seconds(1),
    }
}

/// Moves the files into `out/{step}/` (replacing an earlier run's) and describes them.
async fn publish(
    output: OpOutput,
    out: &Path,
    step: &str,
) -> std::io::Result<(Vec<Artefact>, Option<Value>)> {
    let folder = out.join(step);
    let staging = out.join(format!(".{step}.partial"));
    if staging.exists() {
        tokio::fs::remove_dir_all(&staging).await?;
    }
    let mut artefacts = Vec::new();
    for item in output.produced {
        let (bytes, sha256) = item.digest().await?;
        let target = staging.join(&item.file_name);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if tokio::fs::rename(&item.path, &target).await.is_err() {
            tokio::fs::copy(&item.path, &target).await?;
        }
        artefacts.push(Artefact {
            name: item.name,
            key: format!("{step}/{}", item.file_name),
            content_type: item.content_type,
            bytes,
            sha256,
        });
    }
    tokio::fs::create_dir_all(&staging).await?;
    if folder.exists() {
        tokio::fs::remove_dir_all(&folder).await?;
    }
    tokio::fs::rename(&staging, &folder).await?;
    Ok((artefacts, output.result))
}

/// What job.json says: the job, each step (status, attempts, error, result) and its artefacts
/// by path under the output directory.
fn describe(job: &Job) -> Value {
    let steps: Vec<Value> = job
        .recipe
        .steps
        .iter()
        .filter_map(|spec| job.step(&spec.name).map(|step| (spec, step)))
        .map(|(spec, step)| {
            json!({
                "name": step.name,
                "op": spec.op.name(),
                "options": spec.op.options(),
                "status": step.status,
                "attempts": step.attempts,
                "last_error": step.last_error,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "result": step.result,
                "artefacts": step.artefacts.iter().map(|a| json!({
                    "name": a.name,
                    "path": a.key,
                    "content_type": a.content_type,
                    "bytes": a.bytes,
                    "sha256": a.sha256,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "id": job.id,
        "recipe_name": job.recipe_name,
        "status": job.status,
        "params": job.params,
        "steps": steps,
    })
}

/// One progress bar per step on a terminal; nothing on a pipe or with `--json`.
struct Bars {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn new(job: &Job, enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix:>12} {bar:30.cyan/blue} {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let mut bars = BTreeMap::new();
        for spec in &job.recipe.steps {
            let bar = multi.add(ProgressBar::new(100));
            bar.set_style(style.clone());
            bar.set_prefix(spec.name.clone());
            bar.set_message("waiting");
            bars.insert(spec.name.clone(), bar);
        }
        Self { multi, bars }
    }

    fn bar(&self, step: &str) -> StepBar {
        StepBar(
            self.bars
                .get(step)
                .cloned()
                .unwrap_or_else(ProgressBar::hidden),
        )
    }

    fn update(&self, job: &Job) {
        for step in &job.steps {
            if let Some(bar) = self.bars.get(&step.name) {
                let mut message = step.status.to_string();
                if let Some(error) = &step.last_error {
                    message = format!("{message} ({})", error.code);
                }
                if step.status == vidsnap_domain::StepStatus::Succeeded {
                    bar.set_position(100);
                }
                bar.set_message(message);
            }
        }
    }

    fn finish(&self) {
        for bar in self.bars.values() {
            bar.finish();
        }
        let _ = self.multi.clear();
    }
}

/// A step's bar, fed by its operation.
struct StepBar(ProgressBar);

impl Progress for StepBar {
    fn percent(&self, value: u8) {
        self.0.set_position(u64::from(value.min(100)));
    }
}
