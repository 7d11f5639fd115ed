#!/usr/bin/env bash
# Start a throwaway Orthanc (DICOM archive with the DICOMweb plugin) and print its URL on stdout.
#
#   export NBRISK_TEST_ORTHANC_URL="$(bash .ci/orthanc.sh)"
#
# The archive lives in a fresh temporary directory (or $ORTHANC_DIR, which must not exist yet):
# storage, index, configuration, log and orthanc.pid. HTTP (REST + DICOMweb under /dicom-web/)
# listens on port 8043 or the next free one and answers only requests from this machine
# (RemoteAccessAllowed false), behind HTTP basic auth with one test user whose password is random;
# the URL printed carries it (http://nbrisk:PASSWORD@127.0.0.1:PORT). The DICOM port (4243 or the
# next free one, AE title ORTHANC) accepts C-ECHO, C-FIND, C-GET and C-STORE only from the AE title
# NBRISK at 127.0.0.1 (DicomCheckModalityHost). Stop it with the command printed on stderr.
set -euo pipefail

BIN="${ORTHANC_BIN:-$(command -v Orthanc || echo /usr/sbin/Orthanc)}"
PLUGIN="$(ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/lib/orthanc/libOrthancDicomWeb.so* \
  2>/dev/null | head -n 1 || true)"
if [ ! -x "$BIN" ]; then
  echo "orthanc.sh: Orthanc not found (apt-get install -y orthanc orthanc-dicomweb)" >&2
  exit 1
fi
if [ -z "$PLUGIN" ]; then
  echo "orthanc.sh: the DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)" >&2
  exit 1
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
HTTP_PORT="${NBRISK_ORTHANC_HTTP_PORT:-8043}"
for _ in $(seq 1 50); do port_busy "$HTTP_PORT" && HTTP_PORT=$((HTTP_PORT + 1)) || break; done
DICOM_PORT="${NBRISK_ORTHANC_DICOM_PORT:-4243}"
for _ in $(seq 1 50); do
  if port_busy "$DICOM_PORT" || [ "$DICOM_PORT" -eq "$HTTP_PORT" ]; then
    DICOM_PORT=$((DICOM_PORT + 1))
  else
    break
  fi
done

if [ -n "${ORTHANC_DIR:-}" ]; then
  DIR="$ORTHANC_DIR"; mkdir -m 700 "$DIR"
else
  DIR="$(mktemp -d /tmp/nbrisk-orthanc.XXXXXX)"
fi
PASSWORD="nbrisk-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

cat >"$DIR/orthanc.json" <<EOF
{
  "Name": "NBRisk test archive",
  "StorageDirectory": "$DIR/storage",
  "IndexDirectory": "$DIR/storage",
  "HttpPort": $HTTP_PORT,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {"nbrisk": "$PASSWORD"},
  "DicomAet": "ORTHANC",
  "DicomPort": $DICOM_PORT,
  "DicomCheckCalledAet": false,
  "DicomCheckModalityHost": true,
  "DicomAlwaysAllowEcho": false,
  "DicomAlwaysAllowStore": false,
  "DicomAlwaysAllowFind": false,
  "DicomAlwaysAllowGet": false,
  "DicomAlwaysAllowMove": false,
  "DicomModalities": {"nbrisk": {"AET": "NBRISK", "Host": "127.0.0.1", "Port": 11112,
                                 "AllowEcho": true, "AllowFind": true, "AllowGet": true,
                                 "AllowMove": false, "AllowStore": true}},
  "UnknownSopClassAccepted": true,
  "StableAge": 2,
  "HttpCompressionEnabled": false,
  "Plugins": ["$PLUGIN"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "EnableWado": false,
               "Host": "127.0.0.1:$HTTP_PORT", "Ssl": false, "StudiesMetadata": "Full",
               "SeriesMetadata": "Full"}
}
EOF
chmod 600 "$DIR/orthanc.json"

nohup "$BIN" "$DIR/orthanc.json" >"$DIR/orthanc.log" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$DIR/orthanc.pid"
URL="http://nbrisk:$PASSWORD@127.0.0.1:$HTTP_PORT"
for _ in $(seq 1 120); do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "orthanc.sh: Orthanc exited at start; its log: $DIR/orthanc.log" >&2
    tail -n 20 "$DIR/orthanc.log" >&2 || true
    exit 1
  fi
  if curl -fsS -u "nbrisk:$PASSWORD" "http://127.0.0.1:$HTTP_PORT/system" >/dev/null 2>&1; then
    echo "orthanc.sh: Orthanc in $DIR on 127.0.0.1:$HTTP_PORT (DICOM port $DICOM_PORT, AE ORTHANC);" \
      "stop with: kill $PID" >&2
    echo "$URL"
    exit 0
  fi
  sleep 0.5
done
echo "orthanc.sh: Orthanc did not answer on 127.0.0.1:$HTTP_PORT within 60 s; its log: $DIR/orthanc.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
