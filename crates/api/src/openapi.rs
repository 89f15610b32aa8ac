//! The OpenAPI 3.1 description of the API, served at `/openapi.json` and rendered at `/docs`.
//!
//! Operations come from the handlers' `#[utoipa::path]` annotations. Routes are registered with
//! `utoipa_axum::routes!`, which adds a handler to the router and its operation to the
//! description in one step, so a route cannot be served without being described. What the
//! annotations do not say is added by [`complete`]:
//! - the answers every `/v1` operation shares: 401 on each authenticated one, 400/415/422 on each
//!   with a JSON body (malformed input, see `extract`), 400 with query parameters, 500 and 503 on all;
//! - the signed blob routes, which the local storage backend serves (`vidsnap-storage`) and the
//!   binary merges in front of this router.
//!
//! `vidsnap-domain` stays free of web dependencies, so the domain types that appear in bodies are
//! described by the documentation-only twins at the end of this file (`*Doc`). Enumerations are
//! built from the domain's own lists (`VideoStatus::ALL`, `ErrorCode::ALL`) so they cannot drift;
//! the structs are checked against real responses by the crate's tests.

use std::{borrow::Cow, collections::BTreeMap};

use chrono::{DateTime, Utc};
use utoipa::{
    Modify, OpenApi, PartialSchema, ToSchema,
    openapi::{
        self, Content, HttpMethod, Ref, RefOr, Required, Response, ResponseBuilder, Schema,
        header::HeaderBuilder,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{ObjectBuilder, OneOfBuilder, Type},
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
    },
};
use vidsnap_domain::{
    DeliveryStatus, ErrorCode, FrameInterval, FrameMode, ImageFormat, VideoStatus,
};

/// The parts of the description that belong to no single handler.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vidsnap API",
        description = "Upload a video, get its frames back as a zip. Every error answers \
            `{\"error\": {\"code\", \"message\", \"fields\"?}}` with a stable kebab-case `code`.",
    ),
    tags(
        (name = "auth", description = "Accounts and tokens."),
        (name = "api-keys", description = "Long-lived credentials for machines (`vsk_…`)."),
        (name = "videos", description = "Videos, their uploads, processing and outputs."),
        (name = "jobs", description = "Recipes of steps run over videos: quality checks, \
            frames, thumbnails… Each step has its own status, attempts, progress and artefacts; \
            a failed step can be re-run alone."),
        (name = "uploads", description = "Resumable uploads: tus 1.0.0 (creation, \
            creation-with-upload, termination, expiration, checksum with sha1 and sha256). Any \
            tus client works: point it at `/v1/uploads` with a credential header and \
            `Upload-Metadata` carrying `filename`. Every answer carries `Tus-Resumable: 1.0.0`."),
        (name = "webhooks", description = "Signed notifications of outcomes, and their delivery \
            log. Each is a POST of a `VideoEvent` (`video.succeeded`, `video.dead`) or `JobEvent` \
            (`job.succeeded`, `job.failed`, `job.dead`) body, versioned (`version`: 1), with \
            `Vidsnap-Event`, `Vidsnap-Delivery` and `Vidsnap-Signature: t=<unix>,v1=<hex \
            HMAC-SHA256 of \"t.body\">` headers."),
        (name = "qc", description = "The bucket workflow's decisions (`[watch.sort]`, seed \
            002): each file of a sorted watched folder checked by its QC report and metadata \
            sidecar, then moved to `processed/`, `failed/` (retried) or `unable_to_process/`. \
            `qc.processed`, `qc.failed` and `qc.unable_to_process` events announce the moves."),
        (name = "blobs", description = "Signed upload and download URLs of the local storage \
            backend. Clients never build these URLs: the API hands them out."),
        (name = "health", description = "Liveness, readiness and Prometheus metrics."),
        (name = "meta", description = "This description and its docs page."),
    ),
    components(schemas(ErrorBody, VideoEventDoc, JobEventDoc)),
    modifiers(&SecuritySchemes),
)]
pub(crate) struct ApiDoc;

/// The three ways to send a credential, named in each authenticated operation's `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`Authorization: Bearer <credential>`: an access token from \
                         `/v1/auth/login`, `/v1/auth/register` or `/v1/auth/refresh` (a JWT), an \
                         API key (`vsk_…`), or a token of the configured OIDC issuer.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "vidsnap_session",
                "The browser session cookie set by `POST /v1/auth/session`. Writes (POST, PUT, \
                 PATCH, DELETE) it authenticates must come from the service's own origin \
                 (`Origin` or `Referer`), else 403 `csrf-refused`.",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An API key (`vsk_…`), for clients that cannot set `Authorization`.",
            ))),
        );
    }
}

/// Adds what no annotation says: the shared answers and the blob routes.
pub(crate) fn complete(mut api: openapi::OpenApi) -> openapi::OpenApi {
    // axum's catch-all `{*file}` is OpenAPI's `{file}` (a value that may hold slashes).
    let paths = std::mem::take(&mut api.paths.paths);
    api.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        // Whether the method writes: those authenticated by the session cookie get the CSRF
        // origin check.
        let operations = [
            (false, &mut item.get),
            (true, &mut item.put),
            (true, &mut item.post),
            (true, &mut item.delete),
            (true, &mut item.patch),
            (false, &mut item.head),
            (false, &mut item.options),
        ];
        let operations = operations
            .into_iter()
            .filter_map(|(writes, operation)| Some((writes, operation.as_mut()?)));
        for (writes, operation) in operations {
            if let Some(security) = operation.security.as_mut().filter(|s| !s.is_empty()) {
                security.push(SecurityRequirement::new("session", Vec::<String>::new()));
            }
            let answers = &mut operation.responses.responses;
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                answers.entry("401".into()).or_insert_with(|| {
                    error(
                        "No credential, or an invalid or expired one (`unauthorized`).",
                        "unauthorized",
                    )
                    .into()
                });
                if writes {
                    answers.entry("403".into()).or_insert_with(|| {
                        error(
                            "Authenticated by the session cookie, but sent by another origin's \
                             page, or naming no origin (`csrf-refused`).",
                            "csrf-refused",
                        )
                        .into()
                    });
                }
            }
            let takes_json = operation
                .request_body
                .as_ref()
                .is_some_and(|body| match body {
                    RefOr::T(body) => body.content.contains_key("application/json"),
                    RefOr::Ref(_) => true,
                });
            if takes_json {
                answers.entry("400".into()).or_insert_with(|| {
                    error(
                        "The body is not valid JSON (`invalid-json`).",
                        "invalid-json",
                    )
                    .into()
                });
                answers.entry("413".into()).or_insert_with(|| {
                    error(
                        "The JSON body is larger than 2 MiB (`payload-too-large`).",
                        "payload-too-large",
                    )
                    .into()
                });
                answers.entry("415".into()).or_insert_with(|| {
                    error(
                        "The body is not sent as `application/json` (`unsupported-media-type`).",
                        "unsupported-media-type",
                    )
                    .into()
                });
                answers.entry("422".into()).or_insert_with(|| {
                    error(
                        "The JSON has the wrong shape: unknown, missing or mistyped fields \
                         (`validation-failed`).",
                        "validation-failed",
                    )
                    .into()
                });
            }
            let has_query = operation.parameters.as_ref().is_some_and(|ps| {
                ps.iter()
                    .any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)))
            });
            if has_query {
                answers.entry("400".into()).or_insert_with(|| {
                    error(
                        "A query parameter does not fit (`invalid-query`).",
                        "invalid-query",
                    )
                    .into()
                });
            }
            answers.entry("500".into()).or_insert_with(|| {
                error(
                    "A bug or unexpected condition (`internal`); details are logged, not sent.",
                    "internal",
                )
                .into()
            });
            answers.entry("503".into()).or_insert_with(|| {
                error(
                    "A backend (database, storage, queue) is unavailable (`unavailable`); \
                     try again shortly.",
                    "unavailable",
                )
                .into()
            });
        }
    }
    add_tus_resumable(&mut api);
    add_blob_paths(&mut api);
    api
}

/// `Tus-Resumable: 1.0.0` on every answer of the tus routes, errors included (a layer adds it).
fn add_tus_resumable(api: &mut openapi::OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with("/v1/uploads") {
            continue;
        }
        let operations = [
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .entry("Tus-Resumable".into())
                        .or_insert_with(|| {
                            RefOr::T(
                                HeaderBuilder::new()
                                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                    .description(Some("`1.0.0`: the tus version spoken."))
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

/// An answer with the shared error body.
fn error(description: &str, code: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::builder()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .example(Some(serde_json::json!({
                    "error": {"code": code, "message": "…"}
                })))
                .build(),
        )
        .build()
}

/// `PUT`/`GET /v1/blobs/{key}`: served by `vidsnap_storage::routes`, which this crate does not
/// depend on, so they are described by hand.
fn add_blob_paths(api: &mut openapi::OpenApi) {
    let parameters = || {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        [
            ParameterBuilder::new()
                .name("key")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(
                    "The blob key, `{user}/{video}/{file}`; its slashes are sent as they are.",
                ))
                .schema(Some(string())),
            ParameterBuilder::new()
                .name("expires")
                .parameter_in(ParameterIn::Query)
                .required(Required::True)
                .description(Some(
                    "When the URL stops working, in Unix seconds (signed).",
                ))
                .schema(Some(
                    ObjectBuilder::new().schema_type(Type::Integer).format(Some(
                        openapi::SchemaFormat::KnownFormat(openapi::KnownFormat::Int64),
                    )),
                )),
            ParameterBuilder::new()
                .name("signature")
                .parameter_in(ParameterIn::Query)
                .required(Required::True)
                .description(Some(
                    "Hex HMAC-SHA256 over the method, the key and `expires`: a URL is good for \
                     one operation on one blob until it expires.",
                ))
                .schema(Some(string().pattern(Some("^[0-9a-f]+$")))),
        ]
    };
    let bytes = || {
        Content::builder()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/octet-stream"),
            ))
            .build()
    };
    let refused = || {
        error(
            "The signature does not match (`signature-mismatch`) or the URL has expired \
             (`url-expired`).",
            "signature-mismatch",
        )
    };
    let bad_key = |also: &str| {
        error(
            &format!("The key is not a valid blob key (`invalid-key`){also}."),
            "invalid-key",
        )
    };
    let put = OperationBuilder::new()
        .tag("blobs")
        .operation_id(Some("upload_blob"))
        .summary(Some("Upload a blob through a signed URL"))
        .description(Some(
            "The `upload.url` of a new video. The body is the file itself, streamed; once it is \
             stored, the video is queued for processing.",
        ))
        .parameters(Some(parameters()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/octet-stream", bytes())
                .build(),
        ))
        .response("200", Response::new("Stored; processing is queued."))
        .response(
            "400",
            bad_key(", or the upload was interrupted (`incomplete-body`)"),
        )
        .response("403", refused())
        .response(
            "404",
            error(
                "The video was deleted after its URL was handed out (`not-found`); nothing is \
                 written.",
                "not-found",
            ),
        )
        .response(
            "409",
            error(
                "The video's upload has arrived already (`invalid-state`); nothing is written.",
                "invalid-state",
            ),
        )
        .response(
            "413",
            error(
                "The body exceeds the configured size limit (`too-large`).",
                "too-large",
            ),
        )
        .response(
            "500",
            error("Storing the upload failed (`internal`).", "internal"),
        )
        .response(
            "503",
            error(
                "Stored, but processing could not be queued (`unavailable`): upload again.",
                "unavailable",
            ),
        );
    let get = OperationBuilder::new()
        .tag("blobs")
        .operation_id(Some("download_blob"))
        .summary(Some("Download a blob through a signed URL"))
        .description(Some(
            "The `outputs.zip.url` and `outputs.thumbnail.url` of a processed video. The content \
             type follows the key's extension (`application/zip`, `image/jpeg`, `image/png`, \
             `image/webp`, `video/mp4`, otherwise `application/octet-stream`).",
        ))
        .parameters(Some(parameters()))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The blob's bytes.")
                .content("application/octet-stream", bytes())
                .build(),
        )
        .response("400", bad_key(""))
        .response("403", refused())
        .response("404", error("No such blob (`not-found`).", "not-found"));
    api.paths
        .add_path_operation("/v1/blobs/{key}", vec![HttpMethod::Put], put);
    api.paths
        .add_path_operation("/v1/blobs/{key}", vec![HttpMethod::Get], get);
}

// Documentation-only shapes: described, never built (the real types live in `error.rs` and
// `vidsnap-domain`).

/// The body of every error answer.
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorDetail {
    /// Stable and kebab-case: match on it. `not-found`, `unauthorized`, `validation-failed`,
    /// `conflict`, `invalid-state`, `email-taken`, `upload-missing`, `internal`, `unavailable`,
    /// `locked`, `invalid-cursor`, `payload-too-large`; the tus routes (`/v1/uploads`) add `unsupported-version`, `invalid-header`,
    /// `offset-mismatch`, `checksum-mismatch`, `upload-expired`, `upload-taken-over`,
    /// `too-large`, `incomplete-body`, `unsupported-media-type`; the blob routes add `invalid-key`, `signature-mismatch`, `url-expired`,
    /// `too-large`, `incomplete-body`.
    #[schema(examples("not-found"))]
    code: String,
    /// For people; may change.
    message: String,
    /// With `validation-failed` only: what is wrong with each field, by field name.
    #[schema(required = false)]
    fields: BTreeMap<String, String>,
}

/// A string enumeration, described from the domain's own list of values where it has one.
macro_rules! string_enum {
    ($twin:ident as $name:literal, $description:literal, $values:expr) => {
        #[doc = $description]
        pub(crate) struct $twin;

        impl PartialSchema for $twin {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some($values))
                    .description(Some($description))
                    .into()
            }
        }

        impl ToSchema for $twin {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_enum!(
    VideoStatusDoc as "VideoStatus",
    "Where a video is in its life: `awaiting_upload` -> `queued` -> `processing` -> `succeeded`, \
     or `failed` (queued again while attempts remain) -> `dead`; `uploaded` for a video stored \
     without processing (`process: false`) once its bytes are there.",
    VideoStatus::SHOWN.map(VideoStatus::as_str)
);

string_enum!(
    StepStatusDoc as "StepStatus",
    "Where a step is: `waiting` (for an upload or upstream steps) -> `ready` (its task queued) -> \
     `running` -> `succeeded`; a transient failure goes back to `ready` after a backoff until \
     no attempts remain (`dead`); input that can never succeed is `failed` at once; steps \
     downstream of a failed or dead one are `skipped`; a cancel makes the rest `cancelled`.",
    vidsnap_domain::StepStatus::ALL.map(vidsnap_domain::StepStatus::as_str)
);

string_enum!(
    JobStatusDoc as "JobStatus",
    "Where a job is, from its steps: `waiting` (an input not uploaded), `queued`, `running`, then \
     `succeeded`, `failed` (a step's input can never succeed), `dead` (a step ran out of \
     attempts) or `cancelled`.",
    vidsnap_domain::JobStatus::ALL.map(vidsnap_domain::JobStatus::as_str)
);

string_enum!(
    EventTypeDoc as "EventType",
    "What an event announces: `video.*` for `/v1/videos` videos, `job.*` for other jobs, \
     `qc.*` for the bucket workflow's moves.",
    vidsnap_domain::EventType::ALL.map(vidsnap_domain::EventType::as_str)
);

string_enum!(
    ErrorCodeDoc as "ErrorCode",
    "Why an attempt failed, as a stable code.",
    ErrorCode::ALL.map(ErrorCode::as_str)
);

string_enum!(
    DeliveryStatusDoc as "DeliveryStatus",
    "Delivery state of a notification; `failed` ones can be redelivered.",
    [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ]
    .map(DeliveryStatus::as_str)
);

string_enum!(
    FrameModeDoc as "FrameMode",
    "Which frame stands for a target time: the one shown at that time (`exact`), or the \
     keyframe at or before it (`keyframe`, cheaper). Requests also accept `key`.",
    [FrameMode::Exact, FrameMode::Keyframe].map(FrameMode::as_str)
);

string_enum!(
    ImageFormatDoc as "ImageFormat",
    "The image format of the frames. Requests also accept `jpeg`.",
    [ImageFormat::Jpg, ImageFormat::Png, ImageFormat::Webp].map(ImageFormat::extension)
);

/// Raw bytes, as a request body.
pub(crate) struct OctetStreamDoc;

impl PartialSchema for OctetStreamDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/offset+octet-stream")
            .description(Some("The bytes themselves."))
            .into()
    }
}

impl ToSchema for OctetStreamDoc {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Bytes")
    }
}

/// A frame interval as requested: seconds, or a duration string such as `"10s"`, `"1.5s"`,
/// `"2m"`.
pub(crate) struct IntervalDoc;

impl PartialSchema for IntervalDoc {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0.0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .examples(["10s"]),
            )
            .description(Some(format!(
                "Time between frames: seconds as a number, or a duration string with a unit \
                 (`ms`, `s`, `m`, `h`) such as \"10s\" or \"1.5m\". Default {} seconds.",
                FrameInterval::DEFAULT_SECONDS
            )))
            .into()
    }
}

impl ToSchema for IntervalDoc {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Interval")
    }
}

/// How a video's frames are extracted.
#[derive(ToSchema)]
#[schema(as = VideoOptions)]
#[allow(dead_code)]
pub(crate) struct VideoOptionsDoc {
    /// Seconds between frames.
    every: f64,
    mode: FrameModeDoc,
    format: ImageFormatDoc,
}

/// Why the last attempt failed.
#[derive(ToSchema)]
#[schema(as = Failure)]
#[allow(dead_code)]
pub(crate) struct FailureDoc {
    code: ErrorCodeDoc,
    message: String,
}

/// One entry of a video's status history.
#[derive(ToSchema)]
#[schema(as = StatusChange)]
#[allow(dead_code)]
pub(crate) struct StatusChangeDoc {
    status: VideoStatusDoc,
    at: DateTime<Utc>,
    /// The attempt this change belongs to (0 before the first).
    attempt: u32,
    reason: Option<String>,
}

/// The body of a `video.succeeded` or `video.dead` webhook POST (and e-mail): version 1.
#[derive(ToSchema)]
#[schema(as = VideoEvent)]
#[allow(dead_code)]
pub(crate) struct VideoEventDoc {
    /// The notification's id: the same on every delivery attempt, to deduplicate.
    id: uuid::Uuid,
    #[schema(rename = "type")]
    r#type: EventTypeDoc,
    /// 1. A new field may appear without a new version; a changed one makes a new version.
    version: u32,
    created_at: DateTime<Utc>,
    video: VideoSummaryDoc,
}

#[derive(ToSchema)]
#[schema(as = VideoSummary)]
#[allow(dead_code)]
pub(crate) struct VideoSummaryDoc {
    id: uuid::Uuid,
    file_name: String,
    status: VideoStatusDoc,
    attempts: u32,
    last_error: Option<FailureDoc>,
    /// Blob keys of the zip and thumbnail, and the number of frames.
    #[schema(value_type = Option<Object>)]
    outputs: Option<()>,
}

/// The body of a `job.succeeded`, `job.failed` or `job.dead` webhook POST (and e-mail):
/// version 1.
#[derive(ToSchema)]
#[schema(as = JobEvent)]
#[allow(dead_code)]
pub(crate) struct JobEventDoc {
    /// The notification's id: the same on every delivery attempt, to deduplicate.
    id: uuid::Uuid,
    #[schema(rename = "type")]
    r#type: EventTypeDoc,
    /// 1. A new field may appear without a new version; a changed one makes a new version.
    version: u32,
    created_at: DateTime<Utc>,
    job: JobSummaryDoc,
}

#[derive(ToSchema)]
#[schema(as = JobSummary)]
#[allow(dead_code)]
pub(crate) struct JobSummaryDoc {
    id: uuid::Uuid,
    recipe_name: Option<String>,
    status: JobStatusDoc,
    /// Advanced by each re-run: one event per job, cycle and outcome.
    cycle: u32,
    /// Input name -> video id.
    inputs: std::collections::BTreeMap<String, uuid::Uuid>,
    steps: Vec<StepSummaryDoc>,
}

#[derive(ToSchema)]
#[schema(as = StepSummary)]
#[allow(dead_code)]
pub(crate) struct StepSummaryDoc {
    name: String,
    op: String,
    status: StepStatusDoc,
    attempts: u32,
    last_error: Option<FailureDoc>,
    /// Download links are on `GET /v1/jobs/{id}`.
    artefacts: Vec<ArtefactDoc>,
}

/// A stored output of a step.
#[derive(ToSchema)]
#[schema(as = Artefact)]
#[allow(dead_code)]
pub(crate) struct ArtefactDoc {
    name: String,
    /// Its blob key.
    key: String,
    content_type: String,
    bytes: u64,
    /// Hex SHA-256 of the bytes.
    sha256: String,
}

/// Either event body (told apart by `type`).
#[derive(ToSchema)]
#[schema(as = Event)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum EventDoc {
    Video(VideoEventDoc),
    Job(JobEventDoc),
}

/// An HTTP request the client performs itself, against storage.
#[derive(ToSchema)]
#[schema(as = PresignedRequest)]
#[allow(dead_code)]
pub(crate) struct PresignedRequestDoc {
    #[schema(examples("PUT"))]
    method: String,
    url: String,
    /// Headers to send as given, as `[name, value]` pairs.
    #[schema(value_type = Vec<Vec<String>>)]
    headers: Vec<(String, String)>,
    expires_at: DateTime<Utc>,
}
