#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine
# (as root; idempotent: what is already there is not installed again, and
# apt-get update runs at most once). scripts/test.sh runs it first.
#
#   - C toolchain and headers for librdkafka, which the rdkafka crate builds from
#     source (cmake-build, ssl, curl, zstd): cmake, g++, make, pkg-config,
#     libssl-dev, libcurl4-openssl-dev, zlib1g-dev
#   - Debian's prometheus (promtool) and prometheus-alertmanager (amtool); their
#     services are not started (policy-rc.d), so ports 9090/9093 stay free
#   - Java 17 and Maven, if missing (the Kafka broker of scripts/kafka.sh)
#   - curl, python3 and PyYAML, if missing (tests/e2e, scripts/check-*.py)
#   - openssl (test certificates) and wrk (HTTP load tests), if missing
#   - Debian's chromium and a font (fonts-dejavu-core), if missing: the page
#     at / and the replay report in a real headless browser (tests/e2e/50-page.sh)
#   - Grafana's dashboard-linter, built with Go into .cache/bin at the version
#     pinned in scripts/dashboard-linter/go.mod (hashes in go.sum)
#   - the Apache Kafka jars (scripts/kafka.sh fetch, cached in .kafka/lib)
#
# Needs rustc/cargo and Go >= 1.23 already on the machine (not from apt:
# Debian 12's are too old).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { echo "install-deps: $*"; }
die() { echo "install-deps: error: $*" >&2; exit 1; }
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# ---------------------------------------------------------------- apt packages
need=()
for pkg in cmake g++ make pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev; do
  installed "$pkg" || need+=("$pkg")
done
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)   # test certificates (tests/http.rs, tests/bridge.rs, tests/e2e)
command -v wrk >/dev/null || need+=(wrk)           # HTTP load (tests/kafka.rs, scripts/bench-drain.sh)
command -v python3 >/dev/null || need+=(python3)
command -v chromium >/dev/null || need+=(chromium)  # headless browser (tests/e2e/50-page.sh)
installed fonts-dejavu-core || need+=(fonts-dejavu-core)   # text in its screenshots

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing ${need[*]}; run this script as root, or: sudo apt-get install --no-install-recommends ${need[*]}"
  fi
  say "apt-get install ${need[*]}"
  # Keep the packages' daemons (prometheus on 9090, alertmanager on 9093) from
  # being started by their maintainer scripts: invoke-rc.d and
  # deb-systemd-invoke both obey a policy-rc.d that exits 101.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by salespulse scripts/install-deps.sh for one apt-get run\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } > /tmp/install-deps-apt.log 2>&1 || rc=$?
  [ "$created_policy" = 1 ] && rm -f "$policy"
  if [ "$rc" != 0 ]; then
    tail -n 30 /tmp/install-deps-apt.log >&2
    die "apt-get failed (exit $rc; full output in /tmp/install-deps-apt.log)"
  fi
  # Under systemd the units are still enabled for the next boot: disable (and
  # stop, should one have started anyway) the ones this run installed.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    for pkg in prometheus prometheus-alertmanager; do
      case " ${need[*]} " in
        *" $pkg "*) systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true ;;
      esac
    done
  fi
fi
for p in 9090 9093; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    say "warning: something listens on 127.0.0.1:$p (a prometheus/alertmanager service?); tests that need this port may fail"
  fi
done

# PyYAML for scripts/check-deploy.py, into whichever python3 is first on PATH
# (pyenv's on these machines, so not Debian's python3-yaml).
if ! python3 -c 'import yaml' 2>/dev/null; then
  say "pip install pyyaml"
  python3 -m pip install -q pyyaml || die "pip install pyyaml failed"
fi

# ---------------------------------------------------------------- toolchains that apt cannot give
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
command -v go >/dev/null || die "go not found: Go >= 1.23 is needed to build dashboard-linter"

# ---------------------------------------------------------------- dashboard-linter
# `go install github.com/grafana/dashboard-linter@latest` does not work through
# the module proxy here (it refuses the version list and the checksum database
# has no entry), so the version is pinned in a small tools module whose go.sum
# holds the hashes, and built with -mod=readonly.
bin=$root/.cache/bin
tools=$root/scripts/dashboard-linter
stamp=$bin/.dashboard-linter.stamp
linter_version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/grafana/dashboard-linter") { print $(i + 1); exit } }' "$tools/go.mod")
want=$(cat "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin/dashboard-linter" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "building dashboard-linter $linter_version into .cache/bin (first time: ~2 min)"
  mkdir -p "$bin"
  t0=$SECONDS
  (cd "$tools" && GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o "$bin/dashboard-linter.new" github.com/grafana/dashboard-linter) \
    || die "building dashboard-linter failed (see the go output above)"
  mv -f "$bin/dashboard-linter.new" "$bin/dashboard-linter"
  echo "$want" > "$stamp"
  say "dashboard-linter built in $((SECONDS - t0)) s"
fi

# ---------------------------------------------------------------- Kafka jars
"$root/scripts/kafka.sh" fetch >/dev/null

# ---------------------------------------------------------------- report
say "$(promtool --version 2>&1 | head -n 1)"
say "$(prometheus-alertmanager --version 2>&1 | head -n 1)"
say "dashboard-linter $linter_version (.cache/bin/dashboard-linter)"
say "Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml) (.kafka/lib), $(java -version 2>&1 | head -n 1)"
