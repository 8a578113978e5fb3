// Where a task's stdout and stderr go. containerd 1.6's `file://` stdio is lossy: the shim copies
// both streams into one file, and when the stdout copy ends first it closes the file under the
// stderr copy, so the last stderr lines of an exiting process (a crash message!) can be lost.
// So we use `binary://`: the shim starts a logger with the stdout pipe on fd 3, stderr on fd 4 and
// a "ready" pipe on fd 5 (closed when ready), and on process delete SIGTERMs it and waits for it.
// Loggers ignore SIGTERM and run until both pipes close: so once Tasks/Delete or
// Tasks/DeleteProcess has returned, every byte is in the file. A logger is owned by the shim, so
// it keeps logging while the agent restarts. The shim passes query parameters as arguments
// (`?-e=<script>` → `perl -e <script>`), in Go map order: so one parameter only, with everything
// the logger needs inside the script.
//
// Two loggers:
// - containerLoggerUri: a container's log in the CRI format (../log-format.ts), both streams in
//   one file, each line stamped with the time the logger read it. One perl process per
//   container (perl-base is Essential on Debian; the script uses only builtins): it select()s on
//   both pipes, so lines land in the order it read them. Sub-second time comes from the
//   clock_gettime syscall (Time::HiRes is in the full `perl` package, not perl-base), one call
//   per read, not per line.
// - rawLoggerUri: exec output, byte for byte, to two files: `sh` and two `cat`s.
import { MAX_LOG_LINE } from "../log-format.ts";

const SHELL = "/bin/sh";
const CAT = "/bin/cat";
const PERL = "/usr/bin/perl";

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A stdio URI that appends stdout to `stdoutPath` and stderr to `stderrPath`, raw bytes. */
export function rawLoggerUri(stdoutPath: string, stderrPath: string): string {
  const script = [
    "trap '' TERM",
    `${CAT} <&3 >>${shellQuote(stdoutPath)} 3<&- 4<&- 5>&- &`,
    `${CAT} <&4 >>${shellQuote(stderrPath)} 3<&- 4<&- 5>&- &`,
    "exec 3<&- 4<&- 5>&-",
    "wait",
  ].join("\n");
  return `binary://${SHELL}?-c=${encodeURIComponent(script)}`;
}

/** clock_gettime's syscall number per Node architecture (the logger runs on the agent's machine). */
const CLOCK_GETTIME: Partial<Record<string, number>> = { x64: 228, arm64: 113, riscv64: 113, loong64: 113, ppc64: 246, s390x: 260, ia32: 265, arm: 263 };

/** How long an unfinished line waits for its end before what there is is written as a P record. */
const PARTIAL_FLUSH_SECONDS = 0.5;

// $nr: clock_gettime's number (0: unknown). now() falls back to whole seconds if the syscall
// fails or disagrees with time(). Records are built per read and written with one syswrite.
const PERL_LOGGER = String.raw`
use strict;
$SIG{TERM} = 'IGNORE';
my ($path, $nr, $max, $quiet) = (@PATH@, @NR@, @MAX@, @QUIET@);
open(my $log, '>>', $path) or die "skiff logger: $path: $!\n";
if (open(my $ready, '>&=', 5)) { close($ready); }
my @name = ('stdout', 'stderr');
my @fd = (3, 4);
my @in;
open($in[0], '<&=', 3) or die "skiff logger: fd 3: $!\n";
open($in[1], '<&=', 4) or die "skiff logger: fd 4: $!\n";
my @open = (1, 1);
my @pend = ('', '');
my @pendAt = (0, 0);
sub now {
  if ($nr) {
    my $b = "\0" x 16;
    if (syscall($nr, 0, $b) == 0) {
      my ($s, $ns) = unpack('q q', $b);
      return ($s, $ns) if abs($s - time()) <= 1;
    }
    $nr = 0;
  }
  return (time(), 0);
}
sub stamp {
  my ($s, $ns) = @_;
  my @t = gmtime($s);
  my $f = sprintf('%09d', $ns);
  $f =~ s/0+$//;
  return sprintf('%04d-%02d-%02dT%02d:%02d:%02d%sZ', $t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0], $f eq '' ? '' : ".$f");
}
sub put {
  my ($data) = @_;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite($log, $data, length($data) - $off, $off);
    if (!defined $n) { next if $!{EINTR}; return; }
    $off += $n;
  }
}
while ($open[0] || $open[1]) {
  my $rin = '';
  my $wait;
  my ($s, $ns) = now();
  my $t = $s + $ns / 1e9;
  for my $i (0, 1) {
    next unless $open[$i];
    vec($rin, $fd[$i], 1) = 1;
    next if $pend[$i] eq '';
    my $left = $pendAt[$i] + $quiet - $t;
    $wait = $left if !defined $wait || $left < $wait;
  }
  $wait = 0 if defined $wait && $wait < 0;
  my $n = select(my $rout = $rin, undef, undef, $wait);
  if ($n < 0) { next if $!{EINTR}; die "skiff logger: select: $!\n"; }
  ($s, $ns) = now();
  $t = $s + $ns / 1e9;
  my $ts = stamp($s, $ns);
  my $out = '';
  for my $i (0, 1) {
    if ($open[$i] && vec($rout, $fd[$i], 1)) {
      my $got = sysread($in[$i], my $buf, 65536);
      if (!defined $got) { next if $!{EINTR}; $got = 0; }
      if ($got == 0) {
        $open[$i] = 0;
        close($in[$i]);
        $out .= "$ts $name[$i] P $pend[$i]\n" if $pend[$i] ne '';
        $pend[$i] = '';
        next;
      }
      $pendAt[$i] = $t if $pend[$i] eq '';
      my $data = $pend[$i] . $buf;
      my $at = 0;
      for (;;) {
        my $nl = index($data, "\n", $at);
        my $end = $nl < 0 ? length($data) : $nl;
        while ($end - $at >= $max && ($nl < 0 || $end - $at > $max)) {
          $out .= "$ts $name[$i] P " . substr($data, $at, $max) . "\n";
          $at += $max;
        }
        last if $nl < 0;
        $out .= "$ts $name[$i] F " . substr($data, $at, $nl - $at) . "\n";
        $at = $nl + 1;
        $pendAt[$i] = $t;
      }
      $pend[$i] = substr($data, $at);
    } elsif ($pend[$i] ne '' && $t - $pendAt[$i] >= $quiet) {
      $out .= "$ts $name[$i] P $pend[$i]\n";
      $pend[$i] = '';
    }
  }
  put($out) if $out ne '';
}
`;

/** A stdio URI that appends the container's stdout and stderr to `logPath` in the CRI log format. */
export function containerLoggerUri(logPath: string): string {
  // The path in plain text (a perl single-quoted string), so `ps` shows whose logger it is.
  const script = PERL_LOGGER.replace("@PATH@", () => `'${logPath.replace(/[\\']/g, "\\$&")}'`)
    .replace("@NR@", String(CLOCK_GETTIME[process.arch] ?? 0))
    .replace("@MAX@", String(MAX_LOG_LINE))
    .replace("@QUIET@", String(PARTIAL_FLUSH_SECONDS));
  return `binary://${PERL}?-e=${encodeURIComponent(script)}`;
}
