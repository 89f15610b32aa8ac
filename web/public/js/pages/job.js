// A job: its steps (status, attempts, progress, error in words, retry and cancel), artefacts
// with download links, the frame gallery's link, the QC report of a `qc` step, and a player
// when the job has playback URLs. Live through the job's event stream.

import { TERMINAL_JOB, follow, get, post } from '../api.js';
import { badge, bytes, h, problem, replace, toast, when } from '../dom.js';
import { onLeave } from '../app.js';
import { qcReport } from './qc.js';
import { player } from './player.js';

const RETRYABLE = ['failed', 'dead', 'cancelled'];

export async function jobPage(main, id) {
  let job = await get(`/v1/jobs/${id}`);
  document.title = `Job ${id.slice(-8)} · Vidsnap`;
  const status = h('p', { class: 'job-status', 'aria-live': 'polite' });
  const steps = h('div', { class: 'steps' });
  const actions = h('div', { class: 'actions' });
  const errors = h('div');
  const extras = h('div');
  replace(main, h('h1', {}, `Job ${id.slice(-8)}`), status, actions, errors, steps, extras);
  const act = async (what, path, body) => {
    errors.replaceChildren();
    try {
      job = await post(path, body);
      toast(what);
      draw();
      watch();
    } catch (e) {
      errors.append(problem(e));
    }
  };
  let shownExtras = '';
  const draw = () => {
    replace(status, badge(job.status), ` ${job.recipe_name || 'custom recipe'} · run ${job.cycle + 1} · created `, when(job.created_at),
      job.video ? [' · ', h('a', { href: `/videos` }, 'video')] : null);
    replace(actions, TERMINAL_JOB.includes(job.status) ? null
      : h('button', { type: 'button', class: 'danger', onclick: () => act('Cancelled', `/v1/jobs/${id}/cancel`) }, 'Cancel job'));
    replace(steps, job.steps.map((step) => stepCard(job, step, act)));
    // Report, gallery and player once, when their artefacts exist (they do not change after).
    const key = job.steps.map((s) => `${s.name}:${s.status}:${s.artefacts.length}`).join() + JSON.stringify(job.playback || null);
    if (key !== shownExtras) {
      shownExtras = key;
      replace(extras);
      for (const step of job.steps) {
        if (step.op === 'qc' && step.status === 'succeeded') {
          const report = step.artefacts.find((a) => a.name === 'report');
          if (report) extras.append(qcReport(report.url));
        }
      }
      if (job.playback && (job.playback.hls || job.playback.dash)) {
        const p = player(job.playback);
        extras.append(p.element);
        onLeave(p.stop);
      }
    }
  };
  let stop = () => {};
  const watch = () => {
    stop();
    if (TERMINAL_JOB.includes(job.status)) return;
    stop = follow(`/v1/jobs/${id}/events`, 'job', (changed) => { job = changed; draw(); }, (j) => TERMINAL_JOB.includes(j.status));
  };
  onLeave(() => stop());
  draw();
  watch();
}

function stepCard(job, step, act) {
  const frames = step.artefacts.some((a) => a.name === 'manifest');
  const files = step.artefacts.filter((a) => !a.name.startsWith('frames/'));
  const running = step.status === 'running' && typeof step.progress === 'number';
  return h('section', { class: 'step card', 'data-step': step.name, 'data-status': step.status, 'aria-labelledby': `step-${step.name}` },
    h('h2', { id: `step-${step.name}` }, step.name, ' ', h('span', { class: 'hint' }, step.op), ' ', badge(step.status)),
    h('dl', {},
      h('dt', {}, 'Attempts'), h('dd', {}, `${step.attempts} of ${step.max_attempts}`),
      step.started_at ? [h('dt', {}, 'Started'), h('dd', {}, when(step.started_at))] : null,
      step.finished_at ? [h('dt', {}, 'Finished'), h('dd', {}, when(step.finished_at))] : null),
    running ? h('progress', { max: 100, value: step.progress, 'aria-label': `${step.name} progress` }, `${step.progress}%`) : null,
    step.last_error ? h('p', { class: 'error' }, h('strong', {}, step.last_error.code), ': ', step.last_error.message) : null,
    RETRYABLE.includes(step.status)
      ? h('button', { type: 'button', onclick: () => act(`Step ${step.name} runs again`, `/v1/jobs/${job.id}/steps/${encodeURIComponent(step.name)}/retry`, {}) }, `Retry ${step.name}`)
      : null,
    files.length ? h('ul', { class: 'artefacts', 'aria-label': `${step.name} artefacts` }, files.map((a) => h('li', {},
      h('a', { href: a.url, download: a.name.split('/').pop() }, a.name), ' ', h('span', { class: 'hint' }, `${a.content_type}, ${bytes(a.bytes)}`)))) : null,
    frames ? h('p', {}, h('a', { href: `/jobs/${job.id}/frames/${encodeURIComponent(step.name)}`, class: 'button' }, `Frame gallery (${step.artefacts.filter((a) => a.name.startsWith('frames/')).length} frames)`)) : null);
}
