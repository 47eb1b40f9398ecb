# Sourced by scripts/test: install the system programs the tests drive, when missing, with
# one `apt-get update` + `apt-get install`:
#   chromium   the browser tests (Playwright's own, from `playwright install chromium`, also does)
#   haproxy    the load-balancer example is checked with `haproxy -c` and run in front of the proxy
#   espeak-ng  spoken test audio
#   nodejs, npm  the JavaScript suites (Node 20+), and Deepgram's browser component from npm
have_chromium() {
    [ -x /usr/bin/chromium ] || command -v chromium > /dev/null ||
        compgen -G "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}/chromium*" > /dev/null
}
have_program() {  # /usr/sbin is not on a non-root user's PATH, but haproxy lives there
    command -v "$1" > /dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

missing_packages=()
have_chromium || missing_packages+=(chromium)
have_program haproxy || missing_packages+=(haproxy)
have_program espeak-ng || missing_packages+=(espeak-ng)
have_program node || missing_packages+=(nodejs)
have_program npm || missing_packages+=(npm)

if [ "${#missing_packages[@]}" -gt 0 ]; then
    echo "installing ${missing_packages[*]} for the tests (apt-get) ..." >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
    if ! { "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300 \
            install -y -qq "${missing_packages[@]}"; } > .venv/system-packages.log 2>&1; then
        cat .venv/system-packages.log >&2
        echo "could not install ${missing_packages[*]}: run" \
            "'apt-get install ${missing_packages[*]}' as root" \
            "(for Chromium, 'playwright install chromium' also works)" >&2
        exit 1
    fi
fi
unset missing_packages
