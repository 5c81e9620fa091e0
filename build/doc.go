// Package build builds the images of strata.yaml stage by stage and stores every stage in an OCI
// registry under a content-based tag REPO:<digest>-<unix-millis>.
//
// Each image is a pipeline from → beforeInstall → gitArchive → install → beforeSetup → setup →
// gitLatestPatch → dockerInstructions (empty stages skipped); a Dockerfile image is one stage.
// A stage's digest (SHA3-224, 56 hex) covers its parent's digest, its instructions and cache
// versions, and its git inputs, read from git objects. Stored stages are selected by digest
// prefix (one tags listing per build), skipping those created before their parent and, for
// git stages, those whose commit is not an ancestor of HEAD; the oldest wins.
//
// Shell stages run in a container through the Docker Engine API; git and docker-instruction
// stages are applied registry-side with go-containerregistry (no engine, no pull). New stages
// are published under a lock on "<project>/<digest>" after re-listing the digest.
//
// Entry point: Run(ctx, Options) (*stages.Report, error).
package build
