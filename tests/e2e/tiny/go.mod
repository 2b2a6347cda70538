module berth.dev/e2e-tiny

go 1.24
