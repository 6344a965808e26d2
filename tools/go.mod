module github.com/erasured/erasured/tools

go 1.26.8
