# Sourced by scripts/install and scripts/test: make sure the Docker engine answers.
# There is no systemd here: when `docker info` gets no answer, dockerd is started in the
# background (log in PUSHD_DOCKER_LOG, /var/log/pushd-dockerd.log) and waited for, at most
# PUSHD_DOCKER_WAIT seconds (30). Returns non-zero, with one line, when it cannot.

pushd_docker_engine() {
    command -v dockerd >/dev/null 2>&1 || { echo " !    dockerd is missing (apt docker.io)" >&2; return 1; }
    docker info >/dev/null 2>&1 && return 0
    local log=${PUSHD_DOCKER_LOG:-/var/log/pushd-dockerd.log} wait=${PUSHD_DOCKER_WAIT:-30}
    echo "-----> Starting the Docker engine (log: $log)"
    # setsid: the engine outlives this script and its terminal, like a service would
    setsid dockerd >>"$log" 2>&1 </dev/null &
    local pid=$! i
    for ((i = 0; i < wait * 4; i++)); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    echo " !    The Docker engine did not start; last lines of $log:" >&2
    tail -n 5 "$log" >&2
    return 1
}
