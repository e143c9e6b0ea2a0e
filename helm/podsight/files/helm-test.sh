# Run by the chart's `helm test` pod (busybox sh; with TLS an image with curl too): every agent behind the headless Service must be
# ready and serve metrics with at least one program family attached. A "degraded" agent (ready, but a
# family works only partly or the Kubernetes API is not in sync) passes and is named with its
# /readyz. tests/packaging runs this same script against real agents.
set -u
svc=$PODSIGHT_SERVICE
port=$PODSIGHT_PORT
# With the chart's tls and auth values: https and the credentials /metrics asks for, trimmed as the
# agent trims its files (/readyz never asks for them). Certificates are not verified: the test checks
# that the agents serve, not who they are. curl where the image has it: busybox's wget offers TLS
# servers only SHA-1 signatures, which OpenSSL 3 refuses.
scheme=${PODSIGHT_SCHEME:-http}
# fetch URL [HEADER]: the body on stdout, non-zero unless the status is 2xx.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    if [ $# -gt 1 ]; then curl -fsSk --max-time 15 -H "$2" "$1"; else curl -fsSk --max-time 15 "$1"; fi
  elif [ $# -gt 1 ]; then
    # timeout(1) rather than wget -T, which crashes some busybox builds.
    timeout 15 wget -q --no-check-certificate --header "$2" -O - "$1"
  else
    timeout 15 wget -q --no-check-certificate -O - "$1"
  fi
}
trim() { printf '%s' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | tr -d '\n'; }
auth=""
if [ -n "${PODSIGHT_TOKEN:-}" ]; then
  auth="Authorization: Bearer $(trim "$PODSIGHT_TOKEN")"
elif [ -n "${PODSIGHT_BASIC_USER:-}" ]; then
  auth="Authorization: Basic $(printf '%s:%s' "$PODSIGHT_BASIC_USER" "$(trim "${PODSIGHT_BASIC_PASSWORD:-}")" | base64 | tr -d '\n')"
fi
# A headless Service resolves to one address per agent; an address is used as it is; without DNS
# answers, the name itself.
case "$svc" in
  *[!0-9.]* | "") targets=$(nslookup "$svc" 2>/dev/null | awk '/^Name:/ { named = 1; next } named && /^Address/ { print $NF }') ;;
  *) targets=$svc ;;
esac
[ -n "$targets" ] || targets=$svc
failed=0
degraded=0
count=0
for t in $targets; do
  count=$((count + 1))
  case "$t" in *:*) host="[$t]" ;; *) host=$t ;; esac
  if ! ready=$(fetch "$scheme://$host:$port/readyz" 2>&1); then
    echo "FAIL $t: /readyz not 200: $ready"
    failed=$((failed + 1))
    continue
  fi
  if [ -n "$auth" ]; then
    metrics=$(fetch "$scheme://$host:$port/metrics" "$auth" 2>&1)
  else
    metrics=$(fetch "$scheme://$host:$port/metrics" 2>&1)
  fi
  if [ $? -ne 0 ]; then
    echo "FAIL $t: /metrics: $metrics"
    failed=$((failed + 1))
    continue
  fi
  attached=$(echo "$metrics" | grep -c '^podsight_program_attached{.*} 1$')
  if [ "$attached" -eq 0 ]; then
    echo "FAIL $t: no program family attached"
    failed=$((failed + 1))
    continue
  fi
  status=$(echo "$ready" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p')
  if [ "$status" != "ready" ]; then
    degraded=$((degraded + 1))
    echo "ok   $t: ${status:-unknown status}, $attached program families attached; /readyz: $ready"
    continue
  fi
  echo "ok   $t: ready, $attached program families attached"
done
echo "$count agents, $failed failed, $degraded degraded"
[ "$failed" -eq 0 ] && [ "$count" -gt 0 ]
