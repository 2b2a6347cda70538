// cri-pull pulls an image through a container runtime's CRI image service,
// the path the kubelet uses, and prints the image reference the runtime
// returns. Used by Berth's tests to prove that containerd's CRI plugin pulls
// from Berth (crictl is not available from the Go module proxy here).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "CRI socket, e.g. unix:///run/containerd/containerd.sock")
	image := flag.String("image", "", "image reference to pull")
	username := flag.String("username", "", "registry user (optional)")
	password := flag.String("password", "", "registry password (optional)")
	flag.Parse()
	if *endpoint == "" || *image == "" {
		fmt.Fprintln(os.Stderr, "usage: cri-pull -endpoint unix:///path.sock -image REF [-username U -password P]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := runtime.NewImageServiceClient(conn)
	req := &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: *image}}
	if *username != "" {
		req.Auth = &runtime.AuthConfig{Username: *username, Password: *password}
	}
	resp, err := client.PullImage(ctx, req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "PullImage:", err)
		os.Exit(1)
	}
	status, err := client.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: resp.ImageRef}})
	if err != nil || status.Image == nil {
		fmt.Fprintln(os.Stderr, "ImageStatus:", err)
		os.Exit(1)
	}
	fmt.Println(resp.ImageRef)
	for _, d := range status.Image.RepoDigests {
		fmt.Println(d)
	}
}
