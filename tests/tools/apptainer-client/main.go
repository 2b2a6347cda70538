// apptainer-client does, against a registry, what Apptainer and Singularity
// do with SIF images, using the code they use: the container-library-client
// module for `library://` (discovery through the remote's
// /assets/config/config.prod.json, /v1/images, /v1/oci-redirect and the OCI
// API behind it), go-containerregistry for `oras://` in every shape those
// clients have pushed over the years, and the sif/v2 module to make real
// SIF files (optionally signed with a fresh PGP key, as `apptainer sign`
// does). There is no Apptainer binary for the machines Berth's tests run
// on; this program is the closest real thing. Berth's integration tests
// (registry/tests/apptainer/) drive it.
//
// Usage:
//
//	apptainer-client make-sif [-arch amd64] [-partition FILE] [-sign] [-time UNIX] OUT.sif
//	apptainer-client library-push -remote URL [-token T] [-description D] FILE library://[HOST/]ENTITY/COLLECTION/CONTAINER[:TAG[,TAG]]
//	apptainer-client library-pull -remote URL [-token T] [-arch A] library://[HOST/]ENTITY/COLLECTION/CONTAINER[:TAG] OUT
//	apptainer-client oras-push -shape apptainer|proto|null-config|docker [-plain-http] [-username U -password P] FILE oras://HOST/NAME:TAG
//	apptainer-client oras-pull [-arch A] [-plain-http] [-username U -password P] oras://HOST/NAME:TAG OUT
//	apptainer-client oras-index [-plain-http] oras://HOST/NAME:TAG DIGEST=OS/ARCH...
//	apptainer-client oci-sif-push [-arch A] [-plain-http] docker://HOST/NAME:TAG SQUASHFS...
//
// Every command prints one JSON object on stdout describing what it did,
// and exits non-zero with the client's own error message on failure.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	commands := map[string]func([]string) (any, error){
		"make-sif":     makeSIF,
		"library-push": libraryPush,
		"library-pull": libraryPull,
		"oras-push":    orasPush,
		"oras-pull":    orasPull,
		"oras-index":   orasIndex,
		"oci-sif-push": ociSIFPush,
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		usage()
	}
	out, err := run(os.Args[2:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "apptainer-client %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "apptainer-client: writing the result:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: apptainer-client make-sif|library-push|library-pull|oras-push|oras-pull|oras-index|oci-sif-push [flags] ARGS (see main.go)")
	os.Exit(2)
}
