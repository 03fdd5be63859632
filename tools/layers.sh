#!/usr/bin/env bash
# layers.sh - the calls between the files of tools/ (which file calls an
# internal pds__ function defined in which), and a failure when they form
# a cycle: daemon.h names the order, lower files reach higher ones only
# through d->hooks or a callback. Prints "FILE -> FILE ..." per file.
set -euo pipefail
cd "$(dirname "$0")"
files=()
for f in *.c; do
    [ "$f" = pdsync.c ] || files+=("${f%.c}") # the command line is a program of its own
done
declare -A defs
for f in "${files[@]}"; do
    defs[$f]=$( (grep -oE '^[a-z][^(]*\bpds__[a-z_]+\(' "$f.c" || true) | grep -oE 'pds__[a-z_]+' | sort -u | tr '\n' ' ' || true)
done
pairs=""
for f in "${files[@]}"; do
    line="$f ->"
    for g in "${files[@]}"; do
        [ "$f" = "$g" ] && continue
        for x in ${defs[$g]}; do
            if grep -qE "\\b$x\\b" "$f.c"; then
                line="$line $g"
                pairs="$pairs$f $g"$'\n'
                break
            fi
        done
    done
    echo "$line"
done
# tsort wants "before after": a caller comes before what it calls.
if ! printf '%s' "$pairs" | tsort >/dev/null 2>"${TMPDIR:-/tmp}/layers.$$"; then
    echo "tools/: the files call each other in a cycle:" >&2
    cat "${TMPDIR:-/tmp}/layers.$$" >&2
    rm -f "${TMPDIR:-/tmp}/layers.$$"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/layers.$$"
echo "no cycle"
