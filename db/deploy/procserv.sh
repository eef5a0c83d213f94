#!/bin/sh
# Run the bluesky IOC under procServ (see docs/deploy.md): its console on telnet port
# $CONSOLE_PORT of localhost (^X restarts the IOC, gracefully; ^T toggles auto-restart), its
# console log in $LOG_DIR/bluesky-ioc.log (SIGHUP to procServ reopens it, for logrotate).
# Options after the script's name go to the IOC, e.g. --prefix, --devices FILE.
set -eu
: "${CHECKOUT:=/opt/bluesky-ioc}"      # the checkout, with its .venv (scripts/ensure-env.sh)
: "${STATE_DIR:=/var/lib/bluesky-ioc}" # queue, history, run files: one IOC per directory
: "${LOG_DIR:=/var/log/bluesky-ioc}"
: "${CONSOLE_PORT:=4051}"
mkdir -p "$STATE_DIR" "$LOG_DIR"
exec procServ --foreground --quiet --name bluesky-ioc --logfile "$LOG_DIR/bluesky-ioc.log" \
    --pidfile "$LOG_DIR/procServ.pid" --killsig 15 --ignore '^D^C' --holdoff 5 \
    --chdir "$STATE_DIR" "$CONSOLE_PORT" \
    "$CHECKOUT/.venv/bin/bluesky-ioc" --state-dir "$STATE_DIR" "$@"
