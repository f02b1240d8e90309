# Shared helpers of the real-Xen lab scripts (sourced, not run).
# Everything large lives in the cache dir, never in the repository.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB_CACHE="${XENPCI_LAB_CACHE:-/var/cache/xenpci-lab}"
LAB_RUN="$LAB_CACHE/run"          # state of the one running VM

die() { echo "xen-lab: $*" >&2; exit 1; }
note() { echo "xen-lab: $*" >&2; }

# The image key: a hash of build-image itself (its package list, the files it
# writes into the image and the way it builds them are all in it).
lab_image_key() {
    sha256sum "$LAB_DIR/build-image" | cut -c1-16
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
