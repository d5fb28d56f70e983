#!/usr/bin/env bash
# Makes a test certificate authority and a certificate for each site, in DIR (default:
# examples/two-sites/tls/). Not for production: the authority's key sits beside them. Needs openssl.
set -euo pipefail
out=${1:-"$(dirname "$0")/tls"}
mkdir -p "$out"
cd "$out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=edgehook example authority" -keyout ca-key.pem -out ca.pem 2>/dev/null
site() {
  local name=$1 names=$2
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name-key.pem" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
    -extfile <(printf 'subjectAltName=%s' "$names") -out "$name.pem" 2>/dev/null
  rm "$name.csr"
}
site www "DNS:www.example.test,DNS:example.test"
site shop "DNS:shop.example.test,DNS:*.shop.example.test"
echo "certificates in $(pwd): trust ca.pem"
