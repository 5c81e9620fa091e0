// Package git reads the project's git repository through the git CLI: commits, file lists with
// blob hashes (from git objects, not the file system), blob contents, diffs, ancestry, and a
// snapshot commit of a dirty work tree for development builds.
package git
