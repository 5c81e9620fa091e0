package cleanup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// DefaultHostThreshold is the disk use (percent) `strata host cleanup` brings the engine under.
const DefaultHostThreshold = 80

// HostOptions configure HostCleanup.
type HostOptions struct {
	// Docker is the engine; nil = from the environment (DOCKER_HOST…) with API negotiation.
	Docker *client.Client
	// Threshold is the disk use in percent to get under; images are removed until the file
	// system of DiskPath is used less than this. 0 removes every candidate.
	Threshold float64
	// DiskPath is the directory whose file system is measured; default the engine's root dir
	// (the engine must then run on this host).
	DiskPath string
	// Project only removes images of this project ("" = every Strata-made image).
	Project string
	DryRun  bool
	Out     io.Writer
	Log     *slog.Logger
}

// HostImage is a Strata-made image in the local engine.
type HostImage struct {
	ID       string
	Tags     []string
	Project  string
	Size     int64
	LastUsed time.Time // the latest of its creation, its last tagging and its stage tags' times
	InUse    bool      // a container (running or not) uses it
}

// HostResult says what HostCleanup did.
type HostResult struct {
	Candidates []HostImage // Strata-made images, least recently used first
	Removed    []HostImage
	UseBefore  float64
	UseAfter   float64
}

// HostCleanup removes Strata-made images (those with a Strata label) from the local engine,
// least recently used first, until the disk use is under the threshold. Images used by a
// container are never removed.
func HostCleanup(ctx context.Context, o HostOptions) (*HostResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
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
	disk := o.DiskPath
	if disk == "" {
		info, err := cli.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("host cleanup: docker engine: %w", err)
		}
		disk = info.DockerRootDir
	}
	use := func() (float64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(disk, &st); err != nil {
			return 0, fmt.Errorf("host cleanup: disk use of %s (is the engine on this host? else set the disk path): %w", disk, err)
		}
		if st.Blocks == 0 {
			return 0, nil
		}
		return 100 * float64(st.Blocks-st.Bfree) / float64(st.Blocks), nil
	}
	imgs, err := HostImages(ctx, cli, o.Project)
	if err != nil {
		return nil, err
	}
	res := &HostResult{Candidates: imgs}
	if res.UseBefore, err = use(); err != nil {
		return nil, err
	}
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
			fmt.Fprintf(o.Out, "would remove %s %s (last used %s, %d MB)\n", short(im.ID), strings.Join(im.Tags, ","), im.LastUsed.UTC().Format(time.RFC3339), im.Size>>20)
			res.Removed = append(res.Removed, im)
			continue
		}
		if _, err := cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			if client.IsErrNotFound(err) {
				continue
			}
			errs = append(errs, fmt.Errorf("remove image %s: %w", short(im.ID), err))
			continue
		}
		fmt.Fprintf(o.Out, "removed %s %s (last used %s, %d MB)\n", short(im.ID), strings.Join(im.Tags, ","), im.LastUsed.UTC().Format(time.RFC3339), im.Size>>20)
		res.Removed = append(res.Removed, im)
		if res.UseAfter, err = use(); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(o.Out, "disk use %.1f%% -> %.1f%% (threshold %.0f%%), removed %d of %d Strata images\n", res.UseBefore, res.UseAfter, o.Threshold, len(res.Removed), len(imgs))
	if len(errs) > 0 {
		return res, fmt.Errorf("host cleanup: %w", errors.Join(errs...))
	}
	return res, nil
}

// HostImages lists the Strata-made images of the engine (of one project unless project is ""),
// least recently used first.
func HostImages(ctx context.Context, cli *client.Client, project string) ([]HostImage, error) {
	list, err := cli.ImageList(ctx, image.ListOptions{All: false})
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
		strata := false
		var st Stage
		for k := range s.Labels {
			if _, ok := strataKey(k); ok {
				strata = true
			}
		}
		if !strata {
			continue
		}
		StageFromLabels(&st, s.Labels)
		if project != "" && st.Project != project {
			continue
		}
		im := HostImage{ID: s.ID, Tags: s.RepoTags, Project: st.Project, Size: s.Size, InUse: used[s.ID]}
		if s.Created > 0 {
			im.LastUsed = time.Unix(s.Created, 0)
		}
		for _, t := range s.RepoTags {
			if i := strings.LastIndex(t, ":"); i >= 0 {
				if _, created, ok := ParseStageTag(t[i+1:]); ok && created.After(im.LastUsed) {
					im.LastUsed = created
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
