#!/bin/sh
# Generates a few commented JavaScript sources in $1/src.
set -e
out=$1; mkdir -p "$out/src"
for f in app util api store; do
  { echo "// $f: generated"; for j in $(seq 1 200); do echo "// doc for f$j"; echo "export const ${f}_$j = () => $j;"; done; } > "$out/src/$f.js"
done
