# Shared helpers of the real-Xen lab scripts (sourced, not run).
# Everything large lives in the cache dir, never in the repository.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB_CACHE="${XENPCI_LAB_CACHE:-/var/cache/xenpci-lab}"
LAB_RUN="$LAB_CACHE/run"          # state of the one running VM

die() { echo "xen-lab: $*" >&2; exit 1; }
note() { echo "xen-lab: $*" >&2; }

# The Xen version of the lab dom0 (XENPCI_LAB_XEN) and its Debian suite.
LAB_XEN="${XENPCI_LAB_XEN:-4.17}"
lab_suite() {
    case "$LAB_XEN" in
    4.17) echo bookworm ;;
    4.20) echo trixie ;;
    *) die "XENPCI_LAB_XEN=$LAB_XEN: supported are 4.17 (Debian 12) and 4.20 (Debian 13)" ;;
    esac
}

# The image key: the Xen version and a hash of build-image itself (its
# package list, the files it writes into the image and the way it builds
# them are all in it).
lab_image_key() {
    lab_suite >/dev/null
    echo "$LAB_XEN-$(sha256sum "$LAB_DIR/build-image" | cut -c1-16)"
}
lab_image_dir() { echo "$LAB_CACHE/image-$(lab_image_key)"; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mkfs); run it with sudo"
}

# ssh to the running dom0 through one master connection.
lab_ssh_opts() {
    local port key
    { [ -f "$LAB_RUN/port" ] && lab_qemu_pid >/dev/null; } ||
        die "no lab VM is running (xen-lab/boot starts one)"
    port="$(cat "$LAB_RUN/port")"
    key="$(cat "$LAB_RUN/key")"
    SSH_OPTS=(-T -p "$port" -i "$key"
        -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o LogLevel=ERROR -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=8
        -o ControlMaster=auto -o "ControlPath=$LAB_RUN/ssh.ctl" -o ControlPersist=900)
}

lab_qemu_pid() {
    local pid
    [ -f "$LAB_RUN/qemu.pid" ] || return 1
    pid="$(cat "$LAB_RUN/qemu.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    # Ours only: the cmdline names our run dir.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$LAB_RUN/" || return 1
    echo "$pid"
}

# Host tools the lab needs; installs what is missing (as root), else fails.
lab_need_host_tools() {
    local missing=() t pkg
    for t in qemu-system-x86_64:qemu-system-x86 debootstrap:debootstrap cpio:cpio \
             mkfs.ext4:e2fsprogs ssh:openssh-client ssh-keygen:openssh-client \
             python3:python3 flock:util-linux gzip:gzip; do
        command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
    done
    [ ${#missing[@]} = 0 ] && return 0
    need_root
    note "installing host tools: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed: no Debian mirror reachable"
    apt-get install -y -qq "${missing[@]}" >/dev/null || die "cannot install ${missing[*]}"
}

# Wait until the dom0 answers over ssh and `xl info` works; tail of the serial
# log and rc 1 when QEMU exits or TIMEOUT seconds pass since START (epoch).
lab_wait_dom0() {
    local start="$1" timeout="$2" pid
    pid="$(lab_qemu_pid)" || { note "no lab VM is running"; return 1; }
    lab_ssh_opts
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -40 "$LAB_RUN/serial.log" >&2
            note "qemu exited"
            return 1
        fi
        if timeout 20 ssh "${SSH_OPTS[@]}" root@127.0.0.1 'xl info >/dev/null' 2>/dev/null; then
            return 0
        fi
        # A failed try can leave a dead master socket behind.
        lab_ssh_close
        if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
            tail -40 "$LAB_RUN/serial.log" >&2
            note "the dom0 did not answer within ${timeout}s"
            return 1
        fi
        sleep 3
    done
}

lab_ssh_close() {
    if [ -S "$LAB_RUN/ssh.ctl" ]; then
        ssh -o "ControlPath=$LAB_RUN/ssh.ctl" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
    fi
    rm -f "$LAB_RUN/ssh.ctl"
}

# "Xen 4.17.7, Linux 6.1.0-..." of the running dom0.
lab_describe_dom0() {
    lab_ssh_opts
    ssh "${SSH_OPTS[@]}" root@127.0.0.1 \
        'echo "Xen $(xl info | sed -n "s/^xen_version *: //p"), Linux $(uname -r)"'
}
