# Sourced by scripts/test: make sure the browser tests have a Chromium.
# Playwright's own (`playwright install chromium`) is used when present; otherwise
# Debian's package, which Playwright cannot download but apt can.
have_chromium() {
    [ -x /usr/bin/chromium ] || command -v chromium > /dev/null ||
        compgen -G "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}/chromium*" > /dev/null
}

if ! have_chromium; then
    echo "installing Chromium for the browser tests (apt-get) ..." >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
    if ! { "${sudo_cmd[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium; } \
        > .venv/chromium-install.log 2>&1; then
        cat .venv/chromium-install.log >&2
        echo "could not install Chromium: run 'apt-get install chromium' as root," \
            "or 'playwright install chromium'" >&2
        exit 1
    fi
fi
