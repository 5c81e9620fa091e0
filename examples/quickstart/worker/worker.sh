#!/bin/sh
while true; do echo "worker tick $(date -u +%FT%TZ)"; sleep 30; done
