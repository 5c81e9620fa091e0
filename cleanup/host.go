package cleanup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"strata.dev/strata/stages"
)

// DefaultHostThreshold is the disk use (percent) `strata host cleanup` brings the engine under.
const DefaultHostThreshold = 80

// HostOptions configure HostCleanup.
type HostOptions struct {
	// Docker is the engine; nil = from the environment (DOCKER_HOST…) with API negotiation.
	Docker *client.Client
	// Threshold is the disk use in percent to get under, from 0 to 100: images are removed
	// until the disk is used less than this. 0 removes every candidate.
	Threshold float64
	// DiskPath is the directory whose file system the default DiskUse measures; default the
	// engine's root dir (the engine must then run on this host).
	DiskPath string
	// DiskUse measures the disk holding the engine's data: bytes used and in total. nil =
	// statfs of DiskPath.
	DiskUse func(ctx context.Context) (used, total uint64, err error)
	// Project only removes images of this project ("" = every Strata-made image).
	Project string
	// DryRun removes nothing: it lists the images it would remove, simulating the space each
	// frees (its size not shared with other images) instead of measuring it.
	DryRun bool
	Out    io.Writer
	Log    *slog.Logger
}

// HostImage is a Strata-made image in the local engine.
type HostImage struct {
	ID       string
	Tags     []string
	Project  string
	Size     int64
	Own      int64     // bytes not shared with another image: what removing it alone frees
	LastUsed time.Time // the latest of its creation, its last tagging and its stage tags' times
	InUse    bool      // a container (running or not) uses it
}

// HostResult says what HostCleanup did.
type HostResult struct {
	Candidates []HostImage // Strata-made images, least recently used first
	Removed    []HostImage // removed, or with DryRun those that would be
	UseBefore  float64
	UseAfter   float64 // with DryRun, simulated
}

// HostCleanup removes Strata-made images from the local engine, least recently used first, until
// the disk use is under the threshold, measuring it again after each removal. Images used by a
// container, or that another image depends on, are never removed. An image is Strata-made when it carries a stage tag
// (<digest>-<millis>) whose digest is its own dev.strata.digest label: an image built FROM a
// stage inherits the labels but not such a tag, and is left alone.
func HostCleanup(ctx context.Context, o HostOptions) (*HostResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if math.IsNaN(o.Threshold) || o.Threshold < 0 || o.Threshold > 100 {
		return nil, fmt.Errorf("host cleanup: threshold %v%%: want a disk use percent from 0 to 100", o.Threshold)
	}
	cli := o.Docker
	if cli == nil {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("host cleanup: docker engine: %w", err)
		}
		defer c.Close()
		cli = c
	}
	diskUse := o.DiskUse
	if diskUse == nil {
		disk := o.DiskPath
		if disk == "" {
			info, err := cli.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("host cleanup: docker engine: %w", err)
			}
			disk = info.DockerRootDir
		}
		diskUse = func(context.Context) (uint64, uint64, error) { return statfsUse(disk) }
	}
	measure := func() (used, total uint64, err error) {
		if used, total, err = diskUse(ctx); err != nil {
			return 0, 0, fmt.Errorf("host cleanup: %w", err)
		}
		return used, total, nil
	}
	imgs, err := HostImages(ctx, cli, o.Project)
	if err != nil {
		return nil, err
	}
	res := &HostResult{Candidates: imgs}
	used, total, err := measure()
	if err != nil {
		return nil, err
	}
	res.UseBefore = percent(used, total)
	res.UseAfter = res.UseBefore
	var errs []error
	for _, im := range imgs {
		if res.UseAfter < o.Threshold {
			break
		}
		if im.InUse {
			continue
		}
		if o.DryRun {
			used -= min(used, uint64(max(im.Own, 0)))
			res.UseAfter = percent(used, total)
			fmt.Fprintf(o.Out, "would remove %s %s (last used %s, %d MB, frees ~%d MB)\n", short(im.ID), strings.Join(im.Tags, ","), im.LastUsed.UTC().Format(time.RFC3339), im.Size>>20, im.Own>>20)
			res.Removed = append(res.Removed, im)
			continue
		}
		if _, err := cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			if client.IsErrNotFound(err) {
				continue
			}
			if cerrdefs.IsConflict(err) {
				// E.g. an image built FROM it (classic builder) depends on it.
				fmt.Fprintf(o.Out, "kept %s %s: %v\n", short(im.ID), strings.Join(im.Tags, ","), err)
				continue
			}
			errs = append(errs, fmt.Errorf("remove image %s: %w", short(im.ID), err))
			continue
		}
		fmt.Fprintf(o.Out, "removed %s %s (last used %s, %d MB)\n", short(im.ID), strings.Join(im.Tags, ","), im.LastUsed.UTC().Format(time.RFC3339), im.Size>>20)
		o.Log.Info("removed image", "id", im.ID, "tags", im.Tags)
		res.Removed = append(res.Removed, im)
		if used, total, err = measure(); err != nil {
			return res, err
		}
		res.UseAfter = percent(used, total)
	}
	dry := ""
	if o.DryRun {
		dry = " [dry run: simulated]"
	}
	fmt.Fprintf(o.Out, "disk use %.1f%% -> %.1f%% (threshold %.0f%%), removed %d of %d Strata images%s\n", res.UseBefore, res.UseAfter, o.Threshold, len(res.Removed), len(imgs), dry)
	if len(errs) > 0 {
		return res, fmt.Errorf("host cleanup: %w", errors.Join(errs...))
	}
	return res, nil
}

// statfsUse measures the file system holding dir.
func statfsUse(dir string) (used, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("disk use of %s (is the engine on this host? else set the disk path): %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return (st.Blocks - st.Bfree) * bs, st.Blocks * bs, nil
}

func percent(used, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(used) / float64(total)
}

// strataMade tells a stage image (pulled or built by Strata: tagged with its own stage tag)
// from an image that only inherits its labels (built FROM a stage, or re-tagged).
func strataMade(labels map[string]string, tags []string) bool {
	digest := ""
	strata := false
	for k, v := range labels {
		if rest, ok := strataKey(k); ok {
			strata = true
			if rest == "digest" {
				digest = strings.TrimSpace(v)
			}
		}
	}
	if !strata {
		return false
	}
	for _, t := range tags {
		i := strings.LastIndex(t, ":")
		if i < 0 {
			continue
		}
		if st, ok := stages.ParseTag(t[i+1:]); ok && (digest == "" || st.Digest == digest) {
			return true
		}
	}
	return false
}

// HostImages lists the Strata-made images of the engine (of one project unless project is ""),
// least recently used first.
func HostImages(ctx context.Context, cli *client.Client, project string) ([]HostImage, error) {
	list, err := cli.ImageList(ctx, image.ListOptions{All: false, SharedSize: true})
	if err != nil {
		return nil, fmt.Errorf("host cleanup: list images: %w", err)
	}
	containers, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("host cleanup: list containers: %w", err)
	}
	used := map[string]bool{}
	for _, c := range containers {
		used[c.ImageID] = true
	}
	var out []HostImage
	for _, s := range list {
		if !strataMade(s.Labels, s.RepoTags) {
			continue
		}
		var st Stage
		StageFromLabels(&st, s.Labels)
		if project != "" && st.Project != project {
			continue
		}
		im := HostImage{ID: s.ID, Tags: s.RepoTags, Project: st.Project, Size: s.Size, Own: s.Size, InUse: used[s.ID]}
		if s.SharedSize > 0 {
			im.Own = s.Size - s.SharedSize
		}
		if s.Created > 0 {
			im.LastUsed = time.Unix(s.Created, 0)
		}
		for _, t := range s.RepoTags {
			if i := strings.LastIndex(t, ":"); i >= 0 {
				if st, ok := stages.ParseTag(t[i+1:]); ok && st.Created().After(im.LastUsed) {
					im.LastUsed = st.Created()
				}
			}
		}
		if insp, err := cli.ImageInspect(ctx, s.ID); err == nil && insp.Metadata.LastTagTime.After(im.LastUsed) {
			im.LastUsed = insp.Metadata.LastTagTime
		}
		out = append(out, im)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.Before(out[j].LastUsed)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
