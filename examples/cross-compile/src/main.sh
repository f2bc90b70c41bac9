# The program (appended by toolchain/cc after the target's stamp).
if [ "$(uname -m)" != "$MACHINE" ]; then
  echo "hello: built for $TARGET ($MACHINE), running on $(uname -m)" >&2
  exit 1
fi
echo "hello from $TARGET (built on $BUILT_ON)"
