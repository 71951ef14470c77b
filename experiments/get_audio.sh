#!/usr/bin/env bash
# Unlabelled real music for distillation, from Debian's game-music packages (no labels needed:
# the teacher labels it). Downloads the .deb files (apt-get download, no install), unpacks
# them (dpkg-deb -x) and keeps the audio files and each package's copyright file.
# The audio is never committed. Hours and licence per source: experiments/audio_sources.py.
# Usage: experiments/get_audio.sh [DEST]   (default ~/.cache/samplecnn/debian-music)
set -euo pipefail
DEST=${1:-$HOME/.cache/samplecnn/debian-music}
# Music packages: every audio file in them is music (Frets on Fire's songs are rock songs as
# separate stems: backing track, guitar, sometimes rhythm).
PACKAGES=(
  warzone2100-music wesnoth-1.16-music singularity-music asc-music ufoai-music nexuiz-music
  hyperrogue-music planetblupi-music-ogg drascula-music
  fretsonfire-songs-muldjord fretsonfire-songs-sectoid
)
# Game-data packages: only the audio under a folder whose path says music (not sound effects).
DATA_PACKAGES=(
  supertuxkart-data supertux-data hedgewars-data naev-data flare-game megaglest-data
  lugaru-data xmoto-data
)
mkdir -p "$DEST/debs"
cd "$DEST/debs"
for pkg in "${PACKAGES[@]}" "${DATA_PACKAGES[@]}"; do
  if ! ls "${pkg}"_*.deb >/dev/null 2>&1; then
    apt-get download "$pkg" || echo "skipped $pkg: apt-get download failed (run apt-get update once)" >&2
  fi
done
for deb in *.deb; do
  pkg=${deb%%_*}
  out="$DEST/$pkg"
  [ -d "$out" ] && [ -n "$(find "$out" -type f ! -name COPYRIGHT -print -quit)" ] && continue
  rm -rf "$out"
  tmp=$(mktemp -d "$DEST/.unpack.XXXXXX")
  dpkg-deb -x "$deb" "$tmp"
  mkdir -p "$tmp/keep"
  # ufoai and nexuiz keep their music inside .pk3 (zip) archives
  find "$tmp" -name '*.pk3' -print0 | while IFS= read -r -d '' pk3; do
    python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2], [n for n in z.namelist() if n.lower().endswith((".ogg", ".opus", ".mp3", ".flac", ".wav")) and "music" in (sys.argv[1] + n).lower()])' "$pk3" "$tmp/pk3/$(basename "$pk3" .pk3)"
  done
  music_only=()
  case " ${DATA_PACKAGES[*]} " in *" $pkg "*) music_only=(-ipath "$tmp/*music*") ;; esac
  find "$tmp" -path "$tmp/keep" -prune -o -type f \( -iname '*.ogg' -o -iname '*.opus' -o -iname '*.mp3' -o -iname '*.flac' -o -iname '*.wav' \) \
    "${music_only[@]}" -print0 \
    | while IFS= read -r -d '' f; do
        rel=${f#"$tmp"/}; mkdir -p "$tmp/keep/$(dirname "$rel")"; mv "$f" "$tmp/keep/$rel"
      done
  copyright=$(find "$tmp" -path '*/usr/share/doc/*/copyright' | head -n 1)
  [ -n "$copyright" ] && cp "$copyright" "$tmp/keep/COPYRIGHT"
  mv "$tmp/keep" "$out"
  rm -rf "$tmp"
  echo "$pkg: $(find "$out" -type f ! -name COPYRIGHT | wc -l) audio files"
done
