// Package stages is the stages storage contract shared by build, cleanup and bundle: how a stored
// stage is named, labelled, locked and listed, and the report a build writes.
//
//   - Tag: a stage is stored as REPO:<digest>-<unix-millis> (ParseTag, Tag.String); the digest
//     is the stage's content digest (56 lowercase hex digits, formed by package build).
//   - Labels: the dev.strata.* labels every stage image carries (LabelProject, CommitLabel, …).
//   - Locks: the lock names builders and cleanup agree on (PublishLock, BuildingLock,
//     CleanupLock).
//   - Storage: one repository of stages: its tags (Tags, ByDigest) and a stage's labels
//     (Storage.Read, Storage.Labels), over one reused registry connection.
//   - Report: what `strata build` produced (written by build, read by bundle publish).
package stages
