package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

const configUsage = `usage:
  erasured config check [--no-files] FILE
      check the configuration file as a start would, and report every problem at once, each
      with its key path and line: unknown keys, values of the wrong kind, durations, listen
      addresses, URLs, the master key, the account secrets, the TLS and tokens files. The
      ERASURED_* environment variables are applied as at a start. Exits 0 when the file is
      good, 1 otherwise.
      --no-files   do not open the files the configuration names (secrets, keys, TLS and
                   tokens files): for checking an example or a file meant for another machine
`

// configMain runs `erasured config`.
func configMain(args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New(configUsage)
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noFiles := fs.Bool("no-files", false, "do not open the files the configuration names")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err := io.WriteString(stdout, configUsage)
			return err
		}
		return fmt.Errorf("%v\n%s", err, configUsage)
	}
	if fs.NArg() != 1 {
		return errors.New(configUsage)
	}
	path := fs.Arg(0)
	c, problems, lines, err := readConfigFile([]string{"--config", path}, getenv)
	if err != nil {
		return err
	}
	c.noFiles = *noFiles
	if err := c.check(problems, lines); err != nil {
		n := len(flatten(err))
		return fmt.Errorf("%s: %d problem(s):\n%w", path, n, err)
	}
	_, err = fmt.Fprintf(stdout, "%s: ok\n", path)
	return err
}
