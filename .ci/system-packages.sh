#!/usr/bin/env bash
# Install Debian packages used by the browser, PDF, PostgreSQL, PACS and proxy tests (idempotent).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
# the server binaries (initdb, pg_ctl) for .ci/postgres.sh's throwaway cluster
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# a real DICOM archive with DICOMweb for .ci/orthanc.sh (the PACS tests)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/sbin/Orthanc ] || need+=(orthanc)
compgen -G "/usr/share/orthanc/plugins/libOrthancDicomWeb.so*" >/dev/null || need+=(orthanc-dicomweb)
# the reverse proxy of deploy/nginx.conf, run on loopback by tests/e2e/test_two_servers.py
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
