module local.test/goprobe

go 1.26
