#!/usr/bin/env bash
# Runs Spar's whole test suite: unit tests, integration tests (real SQLite
# and file sources), CLI tests against the built `spar` binary, and the
# embedding example. Works on a fresh machine with a Rust toolchain; a
# target directory outside the checkout is reused when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/spar-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Database servers the harness starts (its own instances, in temporary
# directories): PostgreSQL and MariaDB from Debian's packages.
need_pkgs=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 \
  || [ -n "${SPAR_PG_BIN:-}" ] || need_pkgs+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || [ -n "${SPAR_MARIADB_BIN:-}" ] \
  || need_pkgs+=(mariadb-server)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing ${need_pkgs[*]} ..."
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Python tools the tests drive, in a virtual environment outside the
# checkout: moto's S3-compatible server (for s3:// file sources) and the
# ADBC Flight SQL driver with pyarrow (a third-party client of `spar serve`).
SPAR_VENV="${SPAR_VENV:-$HOME/.cache/spar-venv}"
if [ ! -x "$SPAR_VENV/bin/moto_server" ] \
  || ! "$SPAR_VENV/bin/python" -c "import adbc_driver_flightsql, pyarrow" >/dev/null 2>&1; then
  echo "installing test tools into $SPAR_VENV ..."
  python3 -m venv "$SPAR_VENV"
  "$SPAR_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]==5.2.5" "adbc-driver-flightsql==1.13.0" "pyarrow==26.0.1"
fi
export SPAR_MOTO_SERVER="$SPAR_VENV/bin/moto_server"
export SPAR_PYTHON="$SPAR_VENV/bin/python"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The property tests, the differential tester and the bounded fuzzing
# print how many cases they ran: they run on their own, with their output
# shown.
cargo test --workspace --no-fail-fast -- --skip fuzz_targets_survive --skip hostile_names \
  --skip string_literals_select --skip random_queries_agree 2>&1 | tee "$log"
cargo test -p spar-tests --test injection -- --nocapture 2>&1 | tee -a "$log"
cargo test -p spar-tests --test differential -- --nocapture 2>&1 | tee -a "$log"
cargo test -p spar-server --test fuzz -- --nocapture 2>&1 | tee -a "$log"
cargo run --quiet -p spar-engine --example embed > /dev/null
echo "embedding example: ok"

# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
