package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The media types SIF images have been pushed with.
const (
	sifConfig = "application/vnd.sylabs.sif.config.v1+json"
	// Singularity 3.7-3.8 sent a "null" (zero-byte) config and, per oras's
	// advice for null configs, no +json suffix.
	sifConfigNull = "application/vnd.sylabs.sif.config.v1"
	sifLayer      = "application/vnd.sylabs.sif.layer.v1.sif"
	// Singularity < 3.7: misspelled, unversioned.
	sifLayerProto = "appliciation/vnd.sylabs.sif.layer.tar"
	// SingularityCE 4 OCI-SIF: each layer a squashfs.
	squashfsLayer = "application/vnd.sylabs.image.layer.v1.squashfs"
	emptyConfig   = "{}"
)

type registryFlags struct {
	plainHTTP bool
	username  string
	password  string
}

func (r *registryFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&r.plainHTTP, "plain-http", false, "talk to the registry over plain HTTP")
	fs.StringVar(&r.username, "username", "", "registry user (optional)")
	fs.StringVar(&r.password, "password", "", "registry password (optional)")
}

func (r *registryFlags) reference(ref, scheme string) (name.Reference, error) {
	ref = strings.TrimPrefix(ref, scheme+"://")
	ref = strings.TrimPrefix(ref, "//")
	opts := []name.Option{name.WithDefaultTag(name.DefaultTag), name.WithDefaultRegistry(name.DefaultRegistry)}
	if r.plainHTTP {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(ref, opts...)
}

func (r *registryFlags) options(extra ...remote.Option) []remote.Option {
	auth := authn.Anonymous
	if r.username != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: r.username, Password: r.password})
	}
	return append([]remote.Option{remote.WithAuth(auth), remote.WithUserAgent(userAgent)}, extra...)
}

// sifFileLayer is a SIF file as one layer, as Apptainer's oras client
// makes it: digest and diff ID both the file's sha256, served as is.
type sifFileLayer struct {
	path      string
	size      int64
	hash      v1.Hash
	mediaType types.MediaType
}

var _ v1.Layer = (*sifFileLayer)(nil)

func newSIFFileLayer(path string, mt types.MediaType) (*sifFileLayer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	d, err := fileDigest(path)
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(d)
	if err != nil {
		return nil, err
	}
	return &sifFileLayer{path: path, size: info.Size(), hash: h, mediaType: mt}, nil
}

func (l *sifFileLayer) Digest() (v1.Hash, error)             { return l.hash, nil }
func (l *sifFileLayer) DiffID() (v1.Hash, error)             { return l.hash, nil }
func (l *sifFileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *sifFileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
func (l *sifFileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *sifFileLayer) MediaType() (types.MediaType, error)  { return l.mediaType, nil }
func (l *sifFileLayer) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.mediaType, Digest: l.hash, Size: l.size}
}
func (l *sifFileLayer) annotated(a map[string]string) v1.Descriptor {
	d := l.descriptor()
	d.Annotations = a
	return d
}

// sifImage is the image Apptainer (>= 1.3) pushes for `apptainer push
// FILE oras://…`: an OCI manifest whose config is the empty JSON object
// (inlined as data) of the SIF config type, and one SIF layer titled with
// the file's name; `org.opencontainers.image.created` from the SIF header.
type sifImage struct {
	manifest v1.Manifest
	layer    *sifFileLayer
}

var _ v1.Image = (*sifImage)(nil)

func (si *sifImage) Layers() ([]v1.Layer, error)               { return []v1.Layer{si.layer}, nil }
func (si *sifImage) MediaType() (types.MediaType, error)       { return si.manifest.MediaType, nil }
func (si *sifImage) Size() (int64, error)                      { return partial.Size(si) }
func (si *sifImage) ConfigName() (v1.Hash, error)              { return si.manifest.Config.Digest, nil }
func (si *sifImage) ConfigFile() (*v1.ConfigFile, error)       { return nil, nil }
func (si *sifImage) RawConfigFile() ([]byte, error)            { return []byte(emptyConfig), nil }
func (si *sifImage) Digest() (v1.Hash, error)                  { return partial.Digest(si) }
func (si *sifImage) Manifest() (*v1.Manifest, error)           { return &si.manifest, nil }
func (si *sifImage) RawManifest() ([]byte, error)              { return partial.RawManifest(si) }
func (si *sifImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) { return si.LayerByDigest(h) }
func (si *sifImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if si.layer.hash != h {
		return nil, errors.New("requested hash doesn't match SIF layer")
	}
	return si.layer, nil
}

func newSIFImage(path string) (*sifImage, error) {
	layer, err := newSIFFileLayer(path, sifLayer)
	if err != nil {
		return nil, err
	}
	configHash, _, err := v1.SHA256(strings.NewReader(emptyConfig))
	if err != nil {
		return nil, err
	}
	annotations := map[string]string{}
	if created, err := sifCreated(path); err == nil {
		annotations["org.opencontainers.image.created"] = created.UTC().Format(time.RFC3339)
	}
	return &sifImage{
		layer: layer,
		manifest: v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config: v1.Descriptor{
				MediaType: sifConfig,
				Digest:    configHash,
				Size:      int64(len(emptyConfig)),
				Data:      []byte(emptyConfig),
			},
			Layers:      []v1.Descriptor{layer.annotated(map[string]string{"org.opencontainers.image.title": filepath.Base(path)})},
			Annotations: annotations,
		},
	}, nil
}

// rawManifest is a manifest pushed with exactly these bytes and this
// Content-Type, as the older clients serialised theirs.
type rawManifest struct {
	bytes     []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.bytes, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

type pushedManifest struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Manifest  any    `json:"manifest"`
}

// orasPush pushes a SIF as one of the shapes clients have used:
//
//	apptainer    Apptainer >= 1.3 (go-containerregistry): see sifImage
//	proto        Singularity < 3.7 (oras-go 0.x): no mediaType field,
//	             config {} of the SIF config type, the misspelled layer type
//	null-config  Singularity 3.7-3.8: a zero-byte config of type
//	             application/vnd.sylabs.sif.config.v1, SIF layer
//	docker       a Docker schema2 manifest carrying the SIF config and layer
func orasPush(args []string) (any, error) {
	fs := flag.NewFlagSet("oras-push", flag.ContinueOnError)
	var r registryFlags
	r.register(fs)
	shape := fs.String("shape", "apptainer", "apptainer | proto | null-config | docker")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 2 {
		return nil, errors.New("expected FILE oras://REF")
	}
	file := fs.Arg(0)
	ref, err := r.reference(fs.Arg(1), "oras")
	if err != nil {
		return nil, err
	}
	if err := ensureSIF(file); err != nil {
		return nil, err
	}
	if *shape == "apptainer" {
		img, err := newSIFImage(file)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(ref, img, r.options()...); err != nil {
			return nil, err
		}
		raw, err := img.RawManifest()
		if err != nil {
			return nil, err
		}
		return result(ref, raw, types.OCIManifestSchema1)
	}

	title := map[string]string{"org.opencontainers.image.title": filepath.Base(file)}
	var layer *sifFileLayer
	var config []byte
	var configType types.MediaType
	manifestType := types.OCIManifestSchema1
	withMediaTypeField := false
	switch *shape {
	case "proto":
		layer, err = newSIFFileLayer(file, sifLayerProto)
		config, configType = []byte(emptyConfig), sifConfig
	case "null-config":
		layer, err = newSIFFileLayer(file, sifLayer)
		config, configType = []byte{}, sifConfigNull
	case "docker":
		layer, err = newSIFFileLayer(file, sifLayer)
		config, configType = []byte(emptyConfig), sifConfig
		manifestType, withMediaTypeField = types.DockerManifestSchema2, true
	default:
		return nil, fmt.Errorf("unknown shape %q", *shape)
	}
	if err != nil {
		return nil, err
	}
	configLayer := static.NewLayer(config, configType)
	for _, l := range []v1.Layer{configLayer, layer} {
		if err := remote.WriteLayer(ref.Context(), l, r.options()...); err != nil {
			return nil, fmt.Errorf("uploading a blob: %w", err)
		}
	}
	configHash, err := configLayer.Digest()
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"schemaVersion": 2,
		"config":        v1.Descriptor{MediaType: configType, Digest: configHash, Size: int64(len(config))},
		"layers":        []v1.Descriptor{layer.annotated(title)},
	}
	if withMediaTypeField {
		m["mediaType"] = manifestType
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := remote.Put(ref, rawManifest{raw, manifestType}, r.options()...); err != nil {
		return nil, err
	}
	return result(ref, raw, manifestType)
}

func result(ref name.Reference, raw []byte, mt types.MediaType) (pushedManifest, error) {
	h, _, err := v1.SHA256(strings.NewReader(string(raw)))
	if err != nil {
		return pushedManifest{}, err
	}
	var parsed any
	if err := json.Unmarshal(raw, &parsed); err != nil {
		return pushedManifest{}, err
	}
	return pushedManifest{Reference: ref.String(), Digest: h.String(), MediaType: string(mt), Manifest: parsed}, nil
}

type pulledSIF struct {
	Path      string `json:"path"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
}

// orasPull is Apptainer's `apptainer pull [--arch A] OUT oras://…`: the
// image for linux/<arch> (an index is resolved by platform), which must
// have exactly one layer of a SIF layer type; the layer is written to OUT,
// checked to be a SIF, and its size and sha256 checked against the
// manifest's descriptor.
func orasPull(args []string) (any, error) {
	fs := flag.NewFlagSet("oras-pull", flag.ContinueOnError)
	var r registryFlags
	r.register(fs)
	arch := fs.String("arch", "amd64", "architecture to pull")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 2 {
		return nil, errors.New("expected oras://REF OUT")
	}
	ref, err := r.reference(fs.Arg(0), "oras")
	if err != nil {
		return nil, err
	}
	out := fs.Arg(1)
	img, err := remote.Image(ref, r.options(remote.WithPlatform(v1.Platform{OS: "linux", Architecture: *arch}))...)
	if err != nil {
		return nil, err
	}
	manifest, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if len(manifest.Layers) != 1 {
		return nil, fmt.Errorf("ORAS SIF image should have a single layer, found %d", len(manifest.Layers))
	}
	desc := manifest.Layers[0]
	if desc.MediaType != sifLayer && desc.MediaType != sifLayerProto {
		return nil, fmt.Errorf("invalid layer mediatype: %s", desc.MediaType)
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := ensureSIF(out); err != nil {
		_ = os.Remove(out)
		return nil, err
	}
	got, err := fileDigest(out)
	if err != nil {
		return nil, err
	}
	if n != desc.Size || got != desc.Digest.String() {
		return nil, fmt.Errorf("image file (%d bytes, %s) does not match the manifest (%d bytes, %s)", n, got, desc.Size, desc.Digest)
	}
	return pulledSIF{Path: out, Digest: got, Size: n, MediaType: string(desc.MediaType)}, nil
}

// orasIndex tags an OCI index of manifests already in the repository, each
// with its platform (DIGEST=linux/arm64), as multi-architecture SIF images
// are published.
func orasIndex(args []string) (any, error) {
	fs := flag.NewFlagSet("oras-index", flag.ContinueOnError)
	var r registryFlags
	r.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() < 2 {
		return nil, errors.New("expected oras://REF DIGEST=OS/ARCH...")
	}
	ref, err := r.reference(fs.Arg(0), "oras")
	if err != nil {
		return nil, err
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, entry := range fs.Args()[1:] {
		d, platform, ok := strings.Cut(entry, "=")
		osName, arch, ok2 := strings.Cut(platform, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%q: expected DIGEST=OS/ARCH", entry)
		}
		child, err := remote.Head(ref.Context().Digest(d), r.options()...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		child.Platform = &v1.Platform{OS: osName, Architecture: arch}
		idx.Manifests = append(idx.Manifests, *child)
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	if err := remote.Put(ref, rawManifest{raw, types.OCIImageIndex}, r.options()...); err != nil {
		return nil, err
	}
	return result(ref, raw, types.OCIImageIndex)
}

// ociSIFPush pushes what SingularityCE 4 pushes for `singularity push
// image.oci.sif docker://…`: an OCI image whose layers are squashfs file
// systems (application/vnd.sylabs.image.layer.v1.squashfs) under an
// ordinary OCI image config.
func ociSIFPush(args []string) (any, error) {
	fs := flag.NewFlagSet("oci-sif-push", flag.ContinueOnError)
	var r registryFlags
	r.register(fs)
	arch := fs.String("arch", "amd64", "architecture in the image config")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() < 2 {
		return nil, errors.New("expected docker://REF SQUASHFS...")
	}
	ref, err := r.reference(fs.Arg(0), "docker")
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, path := range fs.Args()[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, static.NewLayer(data, squashfsLayer)); err != nil {
			return nil, err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", *arch
	cfg.Config.Cmd = []string{"/bin/sh"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, r.options()...); err != nil {
		return nil, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	return result(ref, raw, types.OCIManifestSchema1)
}

// sifCreated is the SIF header's creation time, which Apptainer puts in
// the manifest's annotations.
func sifCreated(path string) (time.Time, error) {
	f, err := openSIF(path)
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = f.UnloadContainer() }()
	return f.CreatedAt(), nil
}
