package main

import (
	"fmt"
	"os"
	"os/signal"

	"github.com/moat-dev/moat/internal/awsdeploy/cfnstandin"
)

func main() {
	s := cfnstandin.New()
	if len(os.Args) > 1 {
		s.Fail[os.Args[1]] = "You have requested more vCPU capacity than your current vCPU limit of 0 allows"
	}
	fmt.Println(s.URL)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt)
	<-ch
	s.Close()
}
