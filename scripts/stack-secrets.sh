# Sourced by scripts/up.sh after stack-env.sh: the local stack's secrets, each made once per
# checkout under $OPS_VAR_DIR (var/ is git-ignored), readable by the owner only (0600).
# A variable already set in the environment wins and no file is written for it.

# _stack_secret FILE EXPR: print the secret kept in $OPS_VAR_DIR/FILE, first writing it (0600)
# from the Python expression EXPR (the secrets module is imported) when the file is missing or empty.
_stack_secret() {
  local path="$OPS_VAR_DIR/$1"
  if [ ! -s "$path" ]; then
    (umask 077 && python3 -c "import secrets, sys; sys.stdout.write($2)" >"$path.tmp" && mv -f "$path.tmp" "$path")
  fi
  chmod 600 "$path"  # also tightens a file an older checkout made with the default umask
  cat "$path"
}

if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
  DJANGO_SECRET_KEY=$(_stack_secret secret_key 'secrets.token_urlsafe(50)')
fi
if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
  # Flower's login (user:password); Flower reads the variable.
  FLOWER_BASIC_AUTH=$(_stack_secret flower_basic_auth '"admin:" + secrets.token_urlsafe(18)')
fi
# The jobs API token (docs/api.md): local clients (traffic, drills, curl) send the plaintext from
# OPS_API_TOKEN or read it from $OPS_VAR_DIR/api_token; the web tiers keep only its SHA-256.
if [ -z "${OPS_API_TOKEN:-}" ]; then
  OPS_API_TOKEN=$(_stack_secret api_token 'secrets.token_urlsafe(32)')
fi
if [ -z "${JOBS_API_TOKENS:-}" ]; then
  JOBS_API_TOKENS="local:$(printf %s "$OPS_API_TOKEN" |
    python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
fi
export DJANGO_SECRET_KEY FLOWER_BASIC_AUTH OPS_API_TOKEN JOBS_API_TOKENS
