package main

import (
	"github.com/lowrank/lowrank/internal/store/s3test"
)

// s3srv is this package's S3 server, started by the first test that needs
// one; without versitygw those tests skip.
var s3srv s3test.Server
