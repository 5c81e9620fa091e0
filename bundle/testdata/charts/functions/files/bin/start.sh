#!/bin/sh
echo "from file"
