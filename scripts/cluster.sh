#!/usr/bin/env bash
# `make cluster`: the scaled-out mode on loopback, to try by hand. Starts the test services
# (scripts/test-services.sh), makes a fresh PostgreSQL database, a bucket and the queues, and runs
# one API, two workers and a scheduler from one binary; prints the URLs, the credentials and a
# walk-through, then waits. Ctrl-C (or SIGTERM) stops every process it started, deletes the
# database, bucket and queues it made (unless --keep) and stops the test services if it started
# them.
#
#   scripts/cluster.sh [--queue sqs|rabbitmq] [--debug | --bin PATH] [--keep] [--smoke]
#
#   --queue sqs       (default) the AWS shape on moto: S3 storage whose bucket notifies an SQS
#                     queue of uploads ([s3_events]), jobs on SQS
#   --queue rabbitmq  the self-hosted shape: S3 storage on SeaweedFS (real SigV4), jobs on
#                     RabbitMQ; clients report uploads with POST /v1/videos/{id}/uploaded
#   --debug           build and run the dev profile instead of --release
#   --bin PATH        run this vidsnap binary; build nothing
#   --keep            leave the database, bucket and queues in place at the end
#   --smoke           instead of waiting: runs the walk-through itself (a clip processed; with
#                     sqs, a clip put into the watched folder inbox/ processed with no API
#                     call; a worker SIGKILLed mid-job and its job finished by the other), then
#                     stops. Exit 0 when every check passed. Bounded: fails after SMOKE_SECONDS
#                     (300).
#
# Everything it writes is under .cluster/ (git-ignored): the binary it runs (a copy, so that a
# rebuild in the shared target directory cannot pull it from under the processes), one data
# directory and log per process, the generated clips, the configuration every process gets
# (`cluster.env`, its environment, and `vidsnap.toml`, its --config file: the watched folder,
# an array of tables that environment variables cannot give) and `env` (URL, credentials, pids
# and a `bucket` command for a shell: `. .cluster/env`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.cluster"
QUEUE=sqs
PROFILE=release
BIN=""
KEEP=false
SMOKE=false
SMOKE_SECONDS="${SMOKE_SECONDS:-300}"

log() { echo "cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --queue) QUEUE="${2:?--queue sqs|rabbitmq}"; shift 2 ;;
    --queue=*) QUEUE="${1#--queue=}"; shift ;;
    --debug) PROFILE=dev; shift ;;
    --bin) BIN="${2:?--bin PATH}"; PROFILE=given; shift 2 ;;
    --keep) KEEP=true; shift ;;
    --smoke) SMOKE=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see $0 --help)" ;;
  esac
done
case "$QUEUE" in sqs | rabbitmq) ;; *) die "--queue sqs or --queue rabbitmq, not $QUEUE" ;; esac
for tool in curl jq ffmpeg; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install $tool"
done

cd "$ROOT"
mkdir -p "$RUN"
# cmdline PID: the process's command line, empty once it is gone.
cmdline() {
  local args=()
  { mapfile -d '' args <"/proc/$1/cmdline"; } 2>/dev/null || true
  echo "${args[*]}"
}

# One cluster per clone at a time (the names below are the clone's).
if [ -f "$RUN/pid" ] && [[ "$(cmdline "$(cat "$RUN/pid")")" == *cluster.sh* ]]; then
  die "a cluster of this clone already runs (pid $(cat "$RUN/pid")); stop it first"
fi
echo $$ >"$RUN/pid"

# PostgreSQL and RabbitMQ are the machine's, shared by every clone: names of this clone's own.
SUFFIX="$(printf '%s' "$ROOT" | sha1sum | cut -c1-8)"
NAME="vidsnap-cluster-$SUFFIX"         # bucket; SQS queues NAME-jobs, NAME-uploads (+ -dlq)
DATABASE="vidsnap_cluster_$SUFFIX"
AMQP_QUEUE="vidsnap.cluster.$SUFFIX"
ROLES=(api worker-1 worker-2 scheduler)
EMAIL=demo@example.com
PASSWORD="correct horse battery staple"

STARTED=()          # names of the processes this run started (pids in $RUN/pids/NAME)
MADE_DATA=false     # the database, bucket and queues exist and are this run's
OWN_SERVICES=false  # scripts/test-services.sh started the services for this run
SMOKER=""           # the smoke's walk-through, run in the background
UP=false            # the cluster is up and waiting for Ctrl-C

# --- stopping ------------------------------------------------------------------------------

# shielded CMD...: CMD in a session of its own, so that a Ctrl-C at the terminal (which reaches
# the whole foreground process group) cannot cut the set-up or the clean-up short halfway.
shielded() { setsid -w "$@"; }

# running NAME: the process started as NAME still runs (a recycled pid does not count).
running() {
  local pid
  { read -r pid <"$RUN/pids/$1"; } 2>/dev/null || return 1
  [[ "$(cmdline "$pid")" == *"$RUN/vidsnap serve"* ]]
}

# stop_processes: SIGTERM to each (a graceful stop: running steps finish or are handed back),
# SIGKILL to any still there after 30 s.
stop_processes() {
  local name pid deadline=$((SECONDS + 30)) left
  for name in "${STARTED[@]}"; do
    running "$name" && kill -TERM "$(cat "$RUN/pids/$name")" 2>/dev/null || true
  done
  while :; do
    left=()
    for name in "${STARTED[@]}"; do running "$name" && left+=("$name"); done
    [ "${#left[@]}" -gt 0 ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "still running after 30 s, killing: ${left[*]}"
      for name in "${left[@]}"; do kill -KILL "$(cat "$RUN/pids/$name")" 2>/dev/null || true; done
      break
    fi
    sleep 0.2
  done
  [ "${#STARTED[@]}" -eq 0 ] || log "stopped ${STARTED[*]}"
}

cleanup() {
  local status=$?
  # A second Ctrl-C (or timeout(1) passing one on) must not cut the clean-up short: ignored
  # here, and so in every command the clean-up runs.
  trap - EXIT
  trap '' INT TERM
  [ -z "$SMOKER" ] || kill -TERM -- "-$SMOKER" 2>/dev/null || true
  stop_processes
  if $MADE_DATA && ! $KEEP; then
    drop_data || log "could not remove every cluster resource (see above)"
  fi
  if $OWN_SERVICES; then
    log "stopping the test services this run started"
    shielded scripts/test-services.sh stop || true
  fi
  rm -f "$RUN/pid" "$RUN/env"
  exit "$status"
}
trap cleanup EXIT
# Ctrl-C is how a cluster is meant to stop (exit 0); during a build or a smoke it is a failure.
stop_signal() { if $UP; then exit 0; else exit "$1"; fi; }
trap 'stop_signal 130' INT
trap 'stop_signal 143' TERM

# --- the binary ----------------------------------------------------------------------------

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BUILT="$PROFILE build of this checkout"
case "$PROFILE" in
  release)
    log "cargo build --release -p vidsnap"
    "${CARGO:-cargo}" build --release -p vidsnap
    BIN="$TARGET/release/vidsnap"
    ;;
  dev)
    log "cargo build -p vidsnap"
    "${CARGO:-cargo}" build -p vidsnap
    BIN="$TARGET/debug/vidsnap"
    ;;
esac
[ -x "$BIN" ] || die "no vidsnap binary at $BIN"
[ "$PROFILE" != given ] || BUILT="$BIN"
cp "$BIN" "$RUN/vidsnap.new"
mv "$RUN/vidsnap.new" "$RUN/vidsnap"

# --- the services, the database, the bucket and the queues ---------------------------------

# The services are this run's to stop only if none of this clone's ran before (PostgreSQL and
# RabbitMQ are the machine's: test-services.sh stops them only if it started them).
services_before="$(scripts/test-services.sh status 2>/dev/null || true)"
if ! grep -qE '^(smtp|seaweedfs|moto): running' <<<"$services_before"; then
  OWN_SERVICES=true
fi
scripts/test-services.sh start >/dev/null
# The smoke is bounded from here on (the build and the services' installation are not).
DEADLINE=$((SECONDS + SMOKE_SECONDS))
# shellcheck source=/dev/null
. .services/env # plain shell variables: VIDSNAP_TEST_*
VENV_PYTHON="$ROOT/.services/venv/bin/python"

PSQL="$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)"
[ -n "$PSQL" ] || die "psql is missing: apt-get install postgresql-client"
DATABASE_URL="${VIDSNAP_TEST_POSTGRES_URL%/*}/$DATABASE"
psql_admin() {
  PGOPTIONS='-c client_min_messages=warning' shielded "$PSQL" -X -q -v ON_ERROR_STOP=1 \
    "$VIDSNAP_TEST_POSTGRES_URL" "$@"
}

if [ "$QUEUE" = sqs ]; then
  S3_ENDPOINT="$VIDSNAP_TEST_MOTO_ENDPOINT"
  S3_ACCESS_KEY=vidsnap-cluster # moto checks no signatures
  S3_SECRET_KEY=vidsnap-cluster
  S3_WHAT="moto (S3 + SQS)"
else
  S3_ENDPOINT="$VIDSNAP_TEST_S3_ENDPOINT"
  S3_ACCESS_KEY="$VIDSNAP_TEST_S3_ACCESS_KEY"
  S3_SECRET_KEY="$VIDSNAP_TEST_S3_SECRET_KEY"
  S3_WHAT="SeaweedFS"
fi
aws() {
  local sqs=()
  [ "$QUEUE" = sqs ] && sqs=(--sqs)
  shielded "$VENV_PYTHON" "$ROOT/scripts/lib/cluster_aws.py" "$1" "$S3_ENDPOINT" "$S3_ACCESS_KEY" \
    "$S3_SECRET_KEY" "$NAME" "${sqs[@]}"
}

# bucket presign KEY | bucket ls PREFIX: a presigned PUT URL for KEY of the bucket, or its keys
# under PREFIX with their sizes (scripts/lib/cluster_aws.py). Not shielded: the smoke's requests
# stop with it.
bucket() {
  "$VENV_PYTHON" "$ROOT/scripts/lib/cluster_aws.py" "$1" "$S3_ENDPOINT" "$S3_ACCESS_KEY" \
    "$S3_SECRET_KEY" "$NAME" "$2"
}

# amqp_delete: the broker's queues QUEUE and QUEUE.dead and exchange QUEUE.dlx gone.
amqp_delete() {
  shielded "$VENV_PYTHON" "$ROOT/scripts/lib/amqp_delete.py" "$VIDSNAP_TEST_AMQP_URL" "$AMQP_QUEUE"
}

drop_data() {
  local ok=0
  log "removing database $DATABASE, bucket $NAME and the queues"
  psql_admin -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" || ok=1
  aws teardown || ok=1
  if [ "$QUEUE" = rabbitmq ]; then amqp_delete || ok=1; fi
  return "$ok"
}

log "database $DATABASE, bucket $NAME on $S3_WHAT"
MADE_DATA=true
psql_admin -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" -c "CREATE DATABASE $DATABASE"
QUEUES="$(aws setup)"
eval "$QUEUES" # JOBS_URL, JOBS_DLQ_URL, UPLOADS_URL, UPLOADS_DLQ_URL (sqs)
if [ "$QUEUE" = rabbitmq ]; then amqp_delete; fi # the processes declare them anew

# --- the configuration: one environment for every process -----------------------------------

SECRET="$(head -c 36 /dev/urandom | base64 | tr -d '/+=')"
{
  echo "# The configuration of every process of this cluster; the role comes on top."
  echo "VIDSNAP_DATABASE__KIND=postgres"
  echo "VIDSNAP_DATABASE__URL=$DATABASE_URL"
  echo "VIDSNAP_AUTH__SECRET=$SECRET"
  echo "VIDSNAP_STORAGE__KIND=s3"
  echo "VIDSNAP_STORAGE__BUCKET=$NAME"
  echo "VIDSNAP_STORAGE__PATH_STYLE=true"
  echo "VIDSNAP_STORAGE__ALLOW_HTTP=true"
  echo "VIDSNAP_AWS__ENDPOINT=$S3_ENDPOINT"
  echo "VIDSNAP_AWS__REGION=us-east-1"
  echo "VIDSNAP_AWS__ACCESS_KEY_ID=$S3_ACCESS_KEY"
  echo "VIDSNAP_AWS__SECRET_ACCESS_KEY=$S3_SECRET_KEY"
  if [ "$QUEUE" = sqs ]; then
    echo "VIDSNAP_QUEUE__KIND=sqs"
    echo "VIDSNAP_QUEUE__QUEUE_URL=$JOBS_URL"
    echo "VIDSNAP_QUEUE__DEAD_LETTER_QUEUE_URL=$JOBS_DLQ_URL"
    echo "VIDSNAP_S3_EVENTS__QUEUE_URL=$UPLOADS_URL"
    echo "VIDSNAP_S3_EVENTS__DEAD_LETTER_QUEUE_URL=$UPLOADS_DLQ_URL"
  else
    echo "VIDSNAP_QUEUE__KIND=rabbitmq"
    echo "VIDSNAP_QUEUE__URL=$VIDSNAP_TEST_AMQP_URL"
    echo "VIDSNAP_QUEUE__QUEUE=$AMQP_QUEUE"
  fi
  echo "VIDSNAP_SMTP__HOST=${VIDSNAP_TEST_SMTP%:*}"
  echo "VIDSNAP_SMTP__PORT=${VIDSNAP_TEST_SMTP##*:}"
  echo "VIDSNAP_SMTP__TLS=none"
  echo "# A killed worker's step is taken over 10 s after its last heartbeat (default 60 s)."
  echo "VIDSNAP_WORKER__LEASE_SECONDS=10"
  echo "# Ctrl-C: running steps get 5 s, then are handed back (defaults 20 s and 30 s)."
  echo "VIDSNAP_WORKER__SHUTDOWN_GRACE_SECONDS=5"
  echo "VIDSNAP_SERVER__SHUTDOWN_SECONDS=10"
  echo "VIDSNAP_LOG=info"
} >"$RUN/cluster.env"

# What environment variables cannot say (arrays of tables) comes from a file: every process
# runs with --config .cluster/vidsnap.toml (defaults < this file < cluster.env < flags).
{
  echo "# The --config file of every process of this cluster (the rest is cluster.env)."
  echo "# A watched folder: an object put under inbox/ with no API call becomes a video of"
  echo "# $EMAIL, processed by \"frames\", its outputs beside it (inbox/clip.mp4 ->"
  echo "# inbox/clip-images.zip, inbox/clip-image.jpg). The bucket's events bring the objects"
  if [ "$QUEUE" = sqs ]; then
    echo "# ([s3_events], in cluster.env)."
  else
    echo "# ([s3_events]): SeaweedFS sends none, so with --queue rabbitmq nothing arrives here."
  fi
  echo "[[watch]]"
  echo "prefix = \"inbox/\""
  echo "owner = \"$EMAIL\""
  echo "recipe = \"frames\""
  echo "params = { every = \"1s\" }"
} >"$RUN/vidsnap.toml"

# --- the processes ---------------------------------------------------------------------------

rm -rf "$RUN/pids" "$RUN/logs"
mkdir -p "$RUN/pids" "$RUN/logs"

# start NAME ROLE: `vidsnap serve --role ROLE` on a free loopback port, in a session of its own
# (Ctrl-C reaches this script, which stops it gracefully), with its own data directory (a worker
# clears its scratch area at start) and log. HOSTNAME=NAME makes its worker id NAME-PID, which
# the job history shows.
start() {
  local name="$1" role="$2" dir="$RUN/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  (
    cd "$dir" # no stray ./vidsnap.toml
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^VIDSNAP_' || true)
    set -a
    # shellcheck source=/dev/null
    . "$RUN/cluster.env"
    set +a
    export VIDSNAP_SERVER__ROLE="$role" HOSTNAME="$name"
    exec setsid "$RUN/vidsnap" serve --config "$RUN/vidsnap.toml" --listen 127.0.0.1:0 \
      --data-dir "$dir"
  ) </dev/null >"$RUN/logs/$name.log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 10))
  disown "$pid" # its death (a SIGKILL in the walk-through) is reported below, not by bash
  echo "$pid" >"$RUN/pids/$name"
  STARTED+=("$name")
  # Until the subshell has exec'd, its command line is this script's.
  until running "$name"; do
    kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.05
  done
}

# url NAME: the address the process printed once listening.
url() { { grep -m 1 -o "listening on http://[^ ]*" "$RUN/logs/$1.log" 2>/dev/null || true; } | cut -d" " -f3; }

# wait_ready NAME: polls /readyz until 200 (60 s at most); fails with the log's tail if the
# process exits or stays unready.
wait_ready() {
  local name="$1" deadline=$((SECONDS + 60)) address
  while :; do
    running "$name" || {
      log "$name exited; the end of $RUN/logs/$name.log:"
      tail -n 20 "$RUN/logs/$name.log" >&2
      return 1
    }
    address="$(url "$name")"
    [ -n "$address" ] && curl -fsS -o /dev/null --max-time 6 "$address/readyz" 2>/dev/null && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name is not ready after 60 s: $(curl -sS --max-time 6 "$address/readyz" 2>&1)"
      tail -n 20 "$RUN/logs/$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

pid() { cat "$RUN/pids/$1"; }

# The API first: it creates and migrates the tables the others use.
start api api
wait_ready api
start worker-1 worker
start worker-2 worker
start scheduler scheduler
for name in worker-1 worker-2 scheduler; do wait_ready "$name"; done
URL="$(url api)"

# The demo account (the API's own accounts: e-mail and password).
curl -fsS -o /dev/null "$URL/v1/auth/register" -H 'content-type: application/json' \
  -d "$(jq -n --arg e "$EMAIL" --arg p "$PASSWORD" '{email: $e, password: $p}')" ||
  die "registering $EMAIL failed"

# Clips to upload: 3 s, and 2 min for a job long enough to kill its worker in the middle.
mkdir -p "$RUN/clips"
clip() {
  local out="$RUN/clips/$1" seconds="$2" size="$3"
  [ -s "$out" ] && return
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=$size:rate=25:duration=$seconds" \
    -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p "$out.partial.mp4"
  mv "$out.partial.mp4" "$out"
}
clip clip.mp4 3 320x240
clip long.mp4 120 640x480

{
  echo "# . .cluster/env: the cluster of $ROOT (gone when it stops)"
  echo "URL=$URL"
  echo "EMAIL=$EMAIL"
  echo "PASSWORD='$PASSWORD'"
  echo "WORKER_1_PID=$(pid worker-1)"
  echo "WORKER_2_PID=$(pid worker-2)"
  echo "CLIP=$RUN/clips/clip.mp4"
  echo "LONG_CLIP=$RUN/clips/long.mp4"
  echo "DATABASE_URL=$DATABASE_URL"
  echo "QUEUE=$QUEUE"
  echo "# bucket presign KEY: a presigned PUT URL for KEY; bucket ls PREFIX: the keys under it"
  printf 'bucket() { %q %q "$1" %q %q %q %q "$2"; }\n' "$VENV_PYTHON" \
    "$ROOT/scripts/lib/cluster_aws.py" "$S3_ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$NAME"
} >"$RUN/env"

# --- what to do with it ----------------------------------------------------------------------

rel() { echo "${1#"$ROOT"/}"; }
uploaded_step=""
if [ "$QUEUE" = rabbitmq ]; then
  uploaded_step="
  # SeaweedFS sends no bucket events: report the upload (any API process; twice is harmless).
  curl -s -X POST \$URL/v1/videos/\$VIDEO/uploaded -H \"\$AUTH\" | jq -c '{status}'"
fi
if [ "$QUEUE" = sqs ]; then
  watch_step="
  # 2. A watched folder ($(rel "$RUN/vidsnap.toml")): a clip put under inbox/ with no API call
  #    (a presigned PUT from \`bucket\`, as any S3 client) becomes a video of \$EMAIL, processed
  #    by \"frames\" (a frame every 1 s); the outputs land beside it.
  curl -s -T \$CLIP \"\$(bucket presign inbox/dropped.mp4)\"
  until curl -s \$URL/v1/videos -H \"\$AUTH\" | jq -ec '.items[] |
    select(.file_name == \"dropped.mp4\" and .status == \"succeeded\") | {file_name, status, size}'
  do sleep 0.5; done
  bucket ls inbox/   # dropped.mp4 and its -images.zip, -image.jpg, -manifest.json, -frames/"
else
  watch_step="
  # 2. Watched folders ($(rel "$RUN/vidsnap.toml")) need the bucket's S3 events ([s3_events]),
  #    which SeaweedFS does not send: skipped here (make cluster, on moto, shows it)."
fi
summary() {
  cat <<EOF

Vidsnap scaled out on loopback ($QUEUE): four processes of one binary ($BUILT)
$(for name in "${ROLES[@]}"; do printf '  %-10s  %-24s  pid %s\n' "$name" "$(url "$name")" "$(pid "$name")"; done)
  (each serves /healthz, /readyz and /metrics; the API also /docs)

  account     $EMAIL / $PASSWORD
  PostgreSQL  $DATABASE_URL
  storage     $S3_WHAT at $S3_ENDPOINT, bucket $NAME, keys $S3_ACCESS_KEY / $S3_SECRET_KEY
EOF
  if [ "$QUEUE" = sqs ]; then
    cat <<EOF
  SQS         jobs $JOBS_URL
              uploads $UPLOADS_URL (the bucket's s3:ObjectCreated:* events)
EOF
  else
    echo "  RabbitMQ    $VIDSNAP_TEST_AMQP_URL, queue $AMQP_QUEUE"
  fi
  cat <<EOF
  e-mail      aiosmtpd on $VIDSNAP_TEST_SMTP, messages in $(rel "$VIDSNAP_TEST_MAILDIR")/new
  logs        $(rel "$RUN/logs")/{api,worker-1,worker-2,scheduler}.log
  config      $(rel "$RUN/cluster.env") (every process's environment, plus its role)
              $(rel "$RUN/vidsnap.toml") (every process's --config: the watched folder inbox/)

EOF
}

walkthrough() {
  cat <<EOF
Try it from another terminal, in $ROOT:

  . .cluster/env        # URL, EMAIL, PASSWORD, WORKER_1_PID, WORKER_2_PID, CLIP, LONG_CLIP, bucket
  TOKEN=\$(curl -s \$URL/v1/auth/login -H 'content-type: application/json' \\
    -d "{\"email\":\"\$EMAIL\",\"password\":\"\$PASSWORD\"}" | jq -r .access_token)
  AUTH="authorization: Bearer \$TOKEN"

  # 1. A video: create it, PUT the bytes to its presigned URL, straight into the bucket (-T
  #    sends no form content type, which moto would wait on), follow it, see where it ran.
  CREATED=\$(curl -s \$URL/v1/videos -H "\$AUTH" -H 'content-type: application/json' \\
    -d '{"file_name":"clip.mp4","options":{"every":"1s"}}')
  VIDEO=\$(jq -r .video.id <<<"\$CREATED")
  curl -s -T \$CLIP "\$(jq -r .upload.url <<<"\$CREATED")"$uploaded_step
  curl -sN \$URL/v1/videos/\$VIDEO/events -H "\$AUTH" | sed -un 's/^data: //p' | jq -c '{status, attempts}'
  curl -s \$URL/v1/videos/\$VIDEO -H "\$AUTH" | jq -c '.history[] | [.status, .reason]'
  curl -s \$URL/v1/videos/\$VIDEO -H "\$AUTH" | jq '{frames: .outputs.frames, zip: .outputs.zip.url}'
$watch_step

  # 3. Kill the worker in the middle of a job (2 min of video, a PNG every 0.25 s).
  CREATED=\$(curl -s \$URL/v1/videos -H "\$AUTH" -H 'content-type: application/json' \\
    -d '{"file_name":"long.mp4","options":{"every":"0.25s","format":"png"}}')
  VIDEO=\$(jq -r .video.id <<<"\$CREATED")
  curl -s -T \$LONG_CLIP "\$(jq -r .upload.url <<<"\$CREATED")"$uploaded_step
  until WORKER=\$(curl -s \$URL/v1/videos/\$VIDEO -H "\$AUTH" |
    jq -er '.history[] | select(.status == "processing") | .reason'); do sleep 0.2; done
  echo "\$WORKER"; kill -9 "\${WORKER##*-}"       # "worker worker-1-PID": SIGKILL that PID
  # The other worker takes the job over once the dead one's lease (10 s) has run out.
  curl -sN \$URL/v1/videos/\$VIDEO/events -H "\$AUTH" | sed -un 's/^data: //p' | jq -c '{status, attempts}'
  curl -s \$URL/v1/videos/\$VIDEO -H "\$AUTH" | jq -c '.history[] | [.at, .status, .reason]'
  curl -s \$URL/v1/jobs/\$(jq -r .video.job <<<"\$CREATED") -H "\$AUTH" |
    jq -c '.history[] | [.step, .status, .attempt, .reason]'
  ls $(rel "$VIDSNAP_TEST_MAILDIR")/new              # one e-mail per video

Ctrl-C here stops the four processes$($KEEP || echo ", deletes the database, bucket and queues")$($OWN_SERVICES && echo " and stops the test services").
EOF
}

# --- the smoke test: the walk-through, checked -------------------------------------------------

# api METHOD PATH [BODY]: the API's answer, or a failure naming the request.
api() {
  local body
  body="$(curl -sS --max-time 30 -X "$1" "$URL$2" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' ${3:+-d "$3"})" || die "$1 $2 failed"
  echo "$body"
}

# upload FILE NAME OPTIONS: creates a video, PUTs FILE to its presigned URL; prints the id.
upload() {
  local created id
  created="$(api POST /v1/videos "$(jq -n --arg n "$2" --argjson o "$3" '{file_name: $n, options: $o}')")"
  id="$(jq -er .video.id <<<"$created")" || die "creating a video: $created"
  local headers=()
  while IFS= read -r header; do [ -n "$header" ] && headers+=(-H "$header"); done \
    < <(jq -r '.upload.headers[]? | if type == "array" then "\(.[0]): \(.[1])" else empty end' <<<"$created")
  curl -fsS --max-time 60 -X "$(jq -r .upload.method <<<"$created")" "${headers[@]}" \
    -T "$1" -o /dev/null "$(jq -r .upload.url <<<"$created")" ||
    die "the presigned PUT of $2 failed"
  if [ "$QUEUE" = rabbitmq ]; then
    api POST "/v1/videos/$id/uploaded" >/dev/null
  fi
  echo "$id"
}

# wait_for ID WHAT SECONDS JQ: polls the video until JQ holds; prints it.
wait_for() {
  local id="$1" what="$2" deadline=$((SECONDS + $3)) video
  while :; do
    video="$(api GET "/v1/videos/$id")"
    jq -e "$4" <<<"$video" >/dev/null && { echo "$video"; return 0; }
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "FAILED: $what within $3 s; the video: $video"
      return 1
    fi
    sleep 0.2
  done
}

history() { jq -r '.history[] | "    \(.at)  \(.status)\(if .reason then "  (\(.reason))" else "" end)"' <<<"$1"; }

# watched: the 3 s clip put at inbox/dropped.mp4 with a presigned PUT (no API call); checks that
# it is listed as a succeeded video of the demo account and that its zip is beside it.
watched() {
  local url deadline=$((SECONDS + 60)) list video keys
  url="$(bucket presign inbox/dropped.mp4)" || { log "FAILED: presigning inbox/dropped.mp4"; return 1; }
  curl -fsS --max-time 60 -T "$RUN/clips/clip.mp4" -o /dev/null "$url" ||
    { log "FAILED: the presigned PUT of inbox/dropped.mp4"; return 1; }
  while :; do
    list="$(api GET /v1/videos)"
    video="$(jq -c '[.items[] | select(.file_name == "dropped.mp4")][0] // empty' <<<"$list")"
    [ -n "$video" ] && jq -e '.status == "succeeded" or .status == "dead"' <<<"$video" >/dev/null &&
      break
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "FAILED: inbox/dropped.mp4 not listed as succeeded within 60 s; GET /v1/videos: $list"
      return 1
    fi
    sleep 0.2
  done
  history "$video" >&2
  jq -e '.status == "succeeded"' <<<"$video" >/dev/null ||
    { log "FAILED: expected the watched video succeeded: $video"; return 1; }
  keys="$(bucket ls inbox/)" || { log "FAILED: listing the bucket's inbox/"; return 1; }
  sed 's/^/    /' <<<"$keys" >&2
  grep -q '^inbox/dropped-images\.zip ' <<<"$keys" ||
    { log "FAILED: no inbox/dropped-images.zip beside the watched clip"; return 1; }
}

smoke() {
  local started=$SECONDS id video worker victim survivor took
  TOKEN="$(curl -fsS "$URL/v1/auth/login" -H 'content-type: application/json' \
    -d "$(jq -n --arg e "$EMAIL" --arg p "$PASSWORD" '{email: $e, password: $p}')" |
    jq -er .access_token)" || die "logging in failed"

  log "smoke 1/3: a 3 s clip, a frame every second"
  id="$(upload "$RUN/clips/clip.mp4" clip.mp4 '{"every": "1s"}')" || return 1
  video="$(wait_for "$id" "succeeded" 120 '.status == "succeeded" or .status == "dead"')" || return 1
  history "$video" >&2
  jq -e '.status == "succeeded" and .outputs.frames == 3' <<<"$video" >/dev/null ||
    { log "FAILED: expected succeeded with 3 frames: $video"; return 1; }

  # Before the kill: a worker SIGKILLed in an SQS long poll leaves it open at moto, which hands
  # it the next event, out of sight until its visibility timeout (60 s) runs out.
  if [ "$QUEUE" = sqs ]; then
    log "smoke 2/3: a 3 s clip put under the watched folder inbox/, no API call"
    watched || return 1
  else
    log "smoke 2/3: skipped: watched folders need S3 events, which SeaweedFS does not send"
  fi

  log "smoke 3/3: a 2 min clip, its worker SIGKILLed mid-job"
  id="$(upload "$RUN/clips/long.mp4" long.mp4 '{"every": "0.25s", "format": "png"}')" || return 1
  video="$(wait_for "$id" "processing" 60 '.status == "processing" or .status == "succeeded"')" || return 1
  worker="$(jq -r '[.history[] | select(.status == "processing")][0].reason' <<<"$video")"
  case "$worker" in
    "worker worker-1-"*) victim=worker-1 survivor=worker-2 ;;
    "worker worker-2-"*) victim=worker-2 survivor=worker-1 ;;
    *) log "FAILED: no worker named in the history: $video"; return 1 ;;
  esac
  [ "$(jq -r .status <<<"$video")" = processing ] ||
    { log "FAILED: the job ended before its worker could be killed: $video"; return 1; }
  kill -KILL "$(pid "$victim")"
  log "killed $victim (pid $(pid "$victim")) while it ran $id"
  video="$(wait_for "$id" "succeeded after the kill" 180 '.status == "succeeded" or .status == "dead"')" || return 1
  history "$video" >&2
  took="$(jq -r '[.history[] | select(.status == "processing")][1].reason // ""' <<<"$video")"
  jq -e '.status == "succeeded" and .attempts == 2 and .outputs.frames == 480' <<<"$video" \
    >/dev/null || { log "FAILED: expected succeeded at attempt 2 with 480 frames: $video"; return 1; }
  [ "$took" = "worker $survivor-$(pid "$survivor")" ] ||
    { log "FAILED: expected $survivor to take the job over, the history says: $took"; return 1; }
  running "$survivor" && running api && running scheduler ||
    { log "FAILED: a process other than $victim stopped"; return 1; }

  log "smoke passed: ${SECONDS} s in all, the walk-through $((SECONDS - started)) s of them"
}

if $SMOKE; then
  summary >&2
  # In the background and in a process group of its own (set -m), so that the bound or a
  # SIGTERM stops it, with whatever request it is making, at once.
  set -m
  smoke &
  SMOKER=$!
  set +m
  while kill -0 "$SMOKER" 2>/dev/null; do
    [ "$SECONDS" -lt "$DEADLINE" ] || die "FAILED: the smoke overran ${SMOKE_SECONDS} s"
    sleep 0.5 &
    wait $! || true
  done
  wait "$SMOKER"
  SMOKER=""
  exit 0
fi

summary
walkthrough
log "running; Ctrl-C stops it"
UP=true
gone=()
while :; do
  sleep 1 &
  wait $! || true
  for name in "${STARTED[@]}"; do
    if ! running "$name" && [[ " ${gone[*]} " != *" $name "* ]]; then
      gone+=("$name")
      log "$name (pid $(pid "$name")) has exited; the rest keep running (log: $(rel "$RUN/logs/$name.log"))"
    fi
  done
done
