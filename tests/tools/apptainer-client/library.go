package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	library "github.com/apptainer/container-library-client/client"
)

const userAgent = "apptainer/1.4.0 (berth apptainer-client)"

// The download settings of a default apptainer.conf (download concurrency,
// download part size, download buffer size).
var downloader = library.Downloader{Concurrency: 3, PartSize: 5 * 1024 * 1024, BufferSize: 32 * 1024}

// libraryURI finds the library service of a remote endpoint as Apptainer
// does (`apptainer remote add NAME URI`): GET
// <URI>/assets/config/config.prod.json and take libraryAPI.uri. Apptainer
// always asks https://<URI>; the tests give the scheme, as Berth runs on
// plain HTTP there.
func libraryURI(ctx context.Context, remote string) (string, error) {
	url := strings.TrimSuffix(remote, "/") + "/assets/config/config.prod.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", userAgent)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("error making request to server: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("error response from server: %s", res.Status)
	}
	var services map[string]map[string]any
	if err := json.NewDecoder(res.Body).Decode(&services); err != nil {
		return "", fmt.Errorf("jsonresp: failed to unmarshal response: %w", err)
	}
	uri, ok := services["libraryAPI"]["uri"].(string)
	if !ok || uri == "" {
		return "", errors.New("library is not a service at endpoint")
	}
	return uri, nil
}

// normalizeRef is Apptainer's NormalizeLibraryRef: an optional host (when
// the path has more than three parts), the path, and the tags (default
// `latest`).
func normalizeRef(ref string) *library.Ref {
	ref = strings.TrimPrefix(ref, "library://")
	host := ""
	if strings.Count(ref, "/") > 2 {
		parts := strings.SplitN(ref, "/", 2)
		host, ref = parts[0], parts[1]
	}
	elem := strings.SplitN(ref, ":", 2)
	tags := []string{"latest"}
	if len(elem) == 2 {
		tags = strings.Split(elem[1], ",")
	}
	return &library.Ref{Host: host, Path: elem[0], Tags: tags}
}

type libraryFlags struct {
	remote string
	token  string
}

func (l *libraryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.remote, "remote", "", "the remote endpoint's URI (http://HOST:PORT)")
	fs.StringVar(&l.token, "token", "", "the access token `apptainer remote login` stored (optional)")
}

// client is the library client Apptainer configures for a remote
// endpoint: its library URI, its token, Apptainer's user agent.
func (l *libraryFlags) client(ctx context.Context) (*library.Client, error) {
	if l.remote == "" {
		return nil, errors.New("-remote is required")
	}
	uri, err := libraryURI(ctx, l.remote)
	if err != nil {
		return nil, fmt.Errorf("unable to get library service URI: %w", err)
	}
	return library.NewClient(&library.Config{BaseURL: uri, AuthToken: l.token, UserAgent: userAgent})
}

type pushed struct {
	Path string   `json:"path"`
	Tags []string `json:"tags"`
	Arch string   `json:"arch"`
}

// libraryPush is `apptainer push -U FILE library://…` (-U: Apptainer would
// first verify the image's signature against a keyserver; Berth serves
// none, and the signature is checked by whoever pulls).
func libraryPush(args []string) (any, error) {
	fs := flag.NewFlagSet("library-push", flag.ContinueOnError)
	var l libraryFlags
	l.register(fs)
	description := fs.String("description", "", "image description")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 2 {
		return nil, errors.New("expected FILE library://REF")
	}
	file, dest := fs.Arg(0), fs.Arg(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	arch, err := sifArch(file)
	if err != nil {
		return nil, err
	}
	ref := normalizeRef(dest)
	c, err := l.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("error initializing library client: %w", err)
	}
	if ref.Host != "" && ref.Host != c.BaseURL.Host {
		return nil, errors.New("push to location other than current remote is not supported")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("error opening image %s for reading: %w", file, err)
	}
	defer f.Close()
	if _, err := c.UploadImage(ctx, f, ref.Path, arch, ref.Tags, *description, nil); err != nil {
		return nil, err
	}
	return pushed{Path: ref.Path, Tags: ref.Tags, Arch: arch}, nil
}

type pulled struct {
	Image *library.Image `json:"image"`
	Path  string         `json:"path"`
	Hash  string         `json:"hash"`
}

// libraryPull is `apptainer pull [--arch A] OUT library://…`: the image's
// record from /v1/images first (Apptainer keys its cache by its hash),
// then the concurrent download (through /v1/oci-redirect and the OCI API
// when the library offers it), then the downloaded file's hash checked
// against the record, as Apptainer does for its cache.
func libraryPull(args []string) (any, error) {
	fs := flag.NewFlagSet("library-pull", flag.ContinueOnError)
	var l libraryFlags
	l.register(fs)
	arch := fs.String("arch", "amd64", "architecture to pull")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 2 {
		return nil, errors.New("expected library://REF OUT")
	}
	ref := normalizeRef(fs.Arg(0))
	out := fs.Arg(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	c, err := l.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("unable to initialize client library: %w", err)
	}
	full := fmt.Sprintf("%s:%s", ref.Path, ref.Tags[0])
	image, err := c.GetImage(ctx, *arch, full)
	if err != nil {
		if errors.Is(err, library.ErrNotFound) {
			return nil, fmt.Errorf("image does not exist in the library: %s (%s)", full, *arch)
		}
		return nil, err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o777)
	if err != nil {
		return nil, fmt.Errorf("error opening file %s for writing: %w", out, err)
	}
	spec := downloader
	err = c.ConcurrentDownloadImage(ctx, f, *arch, ref.Path, ref.Tags[0], &spec, nil)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out)
		return nil, fmt.Errorf("error downloading image: %w", err)
	}
	hash, err := library.ImageHash(out)
	if err != nil {
		return nil, fmt.Errorf("error getting image hash: %w", err)
	}
	if hash != image.Hash {
		return nil, fmt.Errorf("cached file hash(%s) and expected hash(%s) does not match", hash, image.Hash)
	}
	return pulled{Image: image, Path: out, Hash: hash}, nil
}
