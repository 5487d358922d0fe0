#!/usr/bin/env bash
# OCR of scanned pages and images runs Debian's Tesseract (English data included): install it
# when missing; say so, and go on, when that is impossible (qa then skips scans, naming why).
set -uo pipefail
if command -v tesseract >/dev/null 2>&1; then
  exit 0
fi
echo "tesseract is missing: installing Debian's tesseract-ocr for OCR of scanned pages" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q tesseract-ocr >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null 2>&1
  $SUDO apt-get install -y -q tesseract-ocr >/dev/null 2>&1
}
command -v tesseract >/dev/null 2>&1 || {
  echo "could not install tesseract-ocr: scanned pages and images will be skipped" >&2
  [ "${QA_REQUIRE_OCR:-0}" = "0" ]
}
