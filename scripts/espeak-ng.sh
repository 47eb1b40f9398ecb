# Sourced by scripts/test: espeak-ng, so the mock can speak and the fake microphone can
# say words (tests that need speech fail without it rather than skip).
if ! command -v espeak-ng > /dev/null; then
    echo "installing espeak-ng for the speech tests (apt-get) ..." >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
    apt_get=("${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300)
    if ! { "${apt_get[@]}" update -qq &&
        DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq espeak-ng; } \
        > .venv/espeak-ng-install.log 2>&1; then
        cat .venv/espeak-ng-install.log >&2
        echo "could not install espeak-ng: run 'apt-get install espeak-ng' as root" >&2
        exit 1
    fi
fi
