// tiny is the only program in the end-to-end suite's two images: as the
// kubelet's sandbox ("pause") image it sleeps until SIGTERM/SIGINT; as the
// test image it first prints its arguments (the image's Cmd, which carries a
// token unique to the build, so the Pod's log proves which image ran).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println(strings.Join(os.Args[1:], " "))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
