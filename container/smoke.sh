#!/usr/bin/env bash
# Smoke-test a built image where `podman run` cannot run (no cgroups here): export its
# filesystem, and start its own entry point in a chroot on the host network, as the image's
# own user, with the image's own environment. It must answer /healthz and take a signup in
# Dutch, and its worker must mail the confirmation. Usage: container/smoke.sh [IMAGE]
set -euo pipefail
IMAGE=${1:-localhost/consentsvc:latest}
work=$(mktemp -d /var/tmp/consentsvc-smoke.XXXXXX)
root=$work/root
mkdir -p "$root"
server=
worker=
cleanup() {
  for pid in $worker $server; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  for mounted in "$root/dev" "$root/proc"; do
    mountpoint -q "$mounted" && umount "$mounted"
  done
  rm -rf "$work"
}
trap cleanup EXIT

container=$(podman create "$IMAGE")
podman export "$container" | tar -C "$root" -x
# podman rm also says it could not remove a healthcheck timer: there is no systemd here.
podman rm "$container" >/dev/null 2>&1
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"

user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
uid=$(awk -F: -v u="$user" '$1 == u {print $3 ":" $4}' "$root/etc/passwd")
[ -n "$uid" ] || { echo "smoke: the image's user '$user' is not in its /etc/passwd" >&2; exit 1; }
mapfile -t image_env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
mapfile -t entry < <(podman image inspect --format '{{range .Config.Cmd}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
workdir=$(podman image inspect --format '{{.Config.WorkingDir}}' "$IMAGE")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# JSON logs, as compose.yaml runs it: gunicorn's own logging config must take them.
settings=("CONSENTSVC_BIND=127.0.0.1:$port" "CONSENTSVC_BASE_URL=http://127.0.0.1:$port"
  "WEB_CONCURRENCY=2" "CONSENTSVC_LOG_FORMAT=json")

# A command inside the image, as its user, in its working directory, with only its env.
as_image=(chroot --userspec="$uid" "$root" /usr/bin/env -i "${image_env[@]}" "${settings[@]}"
  /bin/sh -c 'cd "$0" && exec "$@"' "$workdir")

"${as_image[@]}" consentsvc db upgrade >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; exit 1; }
"${as_image[@]}" consentsvc demo >/dev/null
"${as_image[@]}" "${entry[@]}" >"$work/gunicorn.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/gunicorn.log"; exit 1; }
  sleep 0.5
done

python3 - "$port" <<'PY'
import http.cookiejar, json, re, sys, urllib.parse, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
health = json.load(opener.open(f"{base}/healthz", timeout=10))
assert health == {"status": "ok"}, health
form = opener.open(f"{base}/borne/signup", timeout=10).read().decode()
assert 'lang="nl"' in form, "the signup page is not in Dutch"
token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
text = re.search(r'name="text_newsletter" value="(\d+)"', form).group(1)
body = urllib.parse.urlencode({"csrf_token": token, "email": "smoke@example.nl",
                               "purpose": "newsletter", "text_newsletter": text}).encode()
answer = opener.open(f"{base}/borne/signup", data=body, timeout=10).read().decode()
assert "Kijk in je mail" in answer, answer[:500]
print(f"smoke: /healthz ok, signup answered in Dutch ({base})")
PY

"${as_image[@]}" consentsvc worker >"$work/worker.log" 2>&1 &
worker=$!
ready=
for _ in $(seq 1 40); do
  if grep -q "\[mail\] confirm to s\*\*\*@example.nl" "$work/worker.log" \
    && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || {
  echo "smoke: no confirmation mailed, or /readyz not ready:" >&2
  cat "$work/worker.log"; curl -sS "http://127.0.0.1:$port/readyz" >&2; exit 1
}
# Both gunicorn workers' counts, added up in the multiprocess directory.
for _ in 1 2 3 4 5 6; do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null; done
curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
grep -Eq '^consentsvc_http_requests_total\{method="GET",route="/healthz",status="200"\} ([7-9]|[1-9][0-9]+)\.0$' \
  "$work/metrics.txt" || { echo "smoke: /metrics lacks the requests" >&2; cat "$work/metrics.txt" >&2; exit 1; }
echo "smoke: the worker mailed the confirmation, /readyz is ready, /metrics has the requests"
# The web processes run as the image's user, not as root.
for pid in $(pgrep -P "$server") "$server" "$worker"; do
  owner=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  [ "$owner" = "${uid%%:*}" ] || { echo "smoke: process $pid runs as uid $owner" >&2; exit 1; }
done
echo "smoke: gunicorn, its workers and the outbox worker run as $user ($uid)"
# Every line gunicorn wrote, the arbiter's included, is one JSON object; a request line too.
python3 - "$work/gunicorn.log" <<'PY'
import json, sys

lines = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines)
assert any(line["logger"] == "consentsvc.request" and line["route"] == "/<library>/signup" for line in lines)
print(f"smoke: {len(lines)} log lines, each one JSON object")
PY
# The image's own health check, as the engine would run it.
health=$(podman image inspect --format '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d' | tail -n +2)
mapfile -t health_cmd <<<"$health"
"${as_image[@]}" "${health_cmd[@]}" || { echo "smoke: the HEALTHCHECK fails" >&2; exit 1; }
echo "smoke: the image's HEALTHCHECK passes"
