#!/bin/sh
# Entry point of every Wharf container. When the cluster's keys are mounted at /run/wharf/keys (the
# compose `keys` volume or the Kubernetes `wharf-keys` Secret, read-only), copy them into this
# container's own $HUB_DATA_DIR/keys (mode 0600) and refuse to start without them: a node that made keys
# of its own would issue tokens and sessions the other nodes refuse (README, "Scale-out", Keys).
# Then run the command.
set -eu
shared=/run/wharf/keys
if [ -d "$shared" ]; then
    required="registry-token.key registry-token.crt image-signing.key"
    [ -n "${SECRET_KEY:-}${SECRET_KEY_FILE:-}" ] || required="$required secret_key"
    [ -n "${HUB_ENCRYPTION_KEY:-}${HUB_ENCRYPTION_KEY_FILE:-}" ] || required="$required encryption.key"
    for name in $required; do
        if [ ! -s "$shared/$name" ]; then
            echo "wharf: $shared/$name is missing: make the cluster's keys first (deploy/: the keys step)" >&2
            exit 1
        fi
    done
    mkdir -p "$HUB_DATA_DIR/keys"
    for path in "$shared"/*; do
        [ -f "$path" ] || continue
        install -m 0600 "$path" "$HUB_DATA_DIR/keys/$(basename "$path")"
    done
fi
exec "$@"
