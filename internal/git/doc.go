// Package git reads the project's git repository through the git CLI: commits, file lists with
// blob hashes (from git objects, not the file system), blob contents, diffs, ancestry, and a
// snapshot commit of a dirty work tree for development builds. It also writes to remotes for the
// image updater's git write-back: a scratch clone fetching one branch, commits, and pushes that
// are never forced (ErrPushRejected tells the caller to fetch and apply its change again).
package git
