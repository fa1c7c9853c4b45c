# Sourced by the tools/*_env.sh scripts: `find_python 3.12 3.13` prints an interpreter of one of those versions
# ($PYTHON when set; else pythonX.Y on PATH; else a pyenv-installed one), or nothing when there is none.
find_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    local minor cand v p
    for minor in "$@"; do
        cand="python$minor"
        # pyenv shims exist even when the version is not selected: check the interpreter really runs
        if "$cand" -V >/dev/null 2>&1; then command -v "$cand"; return; fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for minor in "$@"; do
            for v in $(pyenv versions --bare 2>/dev/null | grep -E "^${minor//./\\.}\\." || true); do
                p="$(pyenv root)/versions/$v/bin/python"
                [[ -x "$p" ]] && { echo "$p"; return; }
            done
        done
    fi
    echo ""
}
