# Sourced by scripts/install and scripts/test: install the Debian packages pushd needs.
# Installs only what is missing, so a second run is quick.
# docker.io and debootstrap: the docker runtime and its stack image (`pushd stack:build`).
# gcc and libc6-dev: the dyno shim's resident part (pushd/runtime/shim.c) is built on first use.
# postgresql and redis-server: add-on services pushd runs itself; pebble: a real ACME test server.
# iproute2 and procps: the dynos' shared egress namespace (veth pairs, ip_forward in it).

pushd_host_packages() {
    local wanted=(git nginx bubblewrap openssh-client util-linux python3 python3-venv
                  python3-pip curl ca-certificates tar gzip nftables passt e2fsprogs mount wrk
                  docker.io debootstrap gcc libc6-dev
                  postgresql redis-server pebble iproute2 procps
                  "$@")
    command -v node >/dev/null 2>&1 || wanted+=(nodejs)
    command -v npm >/dev/null 2>&1 || wanted+=(npm)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "-----> Installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # nginx from apt may start a system instance; pushd runs its own on its own port.
}

pushd_venv() {  # pushd_venv DIR [pip extras]: a venv with pushd installed from this checkout
    local venv=$1 extras=${2:-}
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    # pip's warnings about this machine's optional local indexes are noise here
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$PUSHD_SRC$extras" 2>&1 \
        | grep -v "^WARNING: Location" || true
}
