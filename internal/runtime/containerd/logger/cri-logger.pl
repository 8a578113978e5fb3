#!/usr/bin/perl
# Skiff's container logger (see ../stdio.ts for how containerd's shim starts it and README.md
# here for the format). It reads the container's stdout (fd 3) and stderr (fd 4), writes CRI log
# records to the log file, rotates that file by size, and reports a failed write instead of
# dropping the output silently. perl-base only (Essential on Debian): builtins, Fcntl, POSIX.
#
# One argument (the shim passes one query parameter): space-separated key=value settings, values
# with "%" and " " percent-escaped. Keys: log, max-size, max-files, report, clock-gettime,
# max-line, partial-flush.
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_NONBLOCK);

$SIG{TERM} = 'IGNORE'; # the shim SIGTERMs on delete; we run until both pipes close
$SIG{PIPE} = 'IGNORE'; # a report FIFO whose reader went away must not kill the logger

my %opt;
for my $kv (split / /, $ARGV[0] // '') {
  my ($k, $v) = split /=/, $kv, 2;
  next unless defined $v;
  $v =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
  $opt{$k} = $v;
}
my $path = $opt{log} // die "skiff logger: no log= setting\n";
my $maxSize = $opt{'max-size'} // 0;          # bytes per file; 0: never rotate
my $maxFiles = $opt{'max-files'} // 0;        # files kept, the current one included
my $reportPath = $opt{report};                # a FIFO the agent reads; else stderr
my $nr = $opt{'clock-gettime'} // 0;          # clock_gettime's syscall number; 0: whole seconds
my $maxLine = $opt{'max-line'} // 16384;      # longer lines are split into P records
my $quiet = $opt{'partial-flush'} // 0.5;     # seconds an unfinished line waits for its end
my ($dir, $base) = $path =~ m{^(.*)/([^/]+)$} ? ($1, $2) : ('.', $path);

# ---- reporting ------------------------------------------------------------------------------
sub report {
  my ($msg) = @_;
  my $line = "$path\t$msg\n"; # logger/reports.ts reads these
  if (defined $reportPath && $reportPath ne '') {
    # Non-blocking: with no reader (the agent is down) the open fails and the report is dropped;
    # the log itself still gets a marker record once writing works again.
    if (sysopen(my $fifo, $reportPath, O_WRONLY | O_NONBLOCK)) {
      syswrite($fifo, substr($line, 0, 4000)); # <= PIPE_BUF: one atomic write, never interleaved
      close($fifo);
    }
    return;
  }
  print STDERR "skiff logger: $line";
}

# ---- time -----------------------------------------------------------------------------------
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

# ---- the log file and its rotation ----------------------------------------------------------
my $log;
my $size = 0;
sub openLog {
  open(my $fh, '>>', $path) or return 0; # a new handle: rotate() closes the old one after
  $log = $fh;
  $size = -s $log // 0;
  return 1;
}
openLog() or die "skiff logger: $path: $!\n";
if (open(my $ready, '>&=', 5)) { close($ready); }

# Rotated files are "<log>.<YYYYMMDD-HHMMSS>.<nanoseconds>": fixed width, so name order is time order.
sub rotated {
  opendir(my $dh, $dir) or return ();
  my @names = sort grep { substr($_, 0, length($base) + 1) eq "$base." && substr($_, length($base)) =~ /^\.\d{8}-\d{6}\.\d{9}$/ } readdir($dh);
  closedir($dh);
  return @names;
}
sub rotate {
  my ($s, $ns) = now();
  my @t = gmtime($s);
  my $name;
  for (;; $ns++) { # two rotations within one clock tick get distinct names
    $name = sprintf('%s.%04d%02d%02d-%02d%02d%02d.%09d', $path, $t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0], $ns % 1000000000);
    last unless -e $name;
  }
  return "rotate: rename to $name: $!" unless rename($path, $name);
  my $old = $log;
  unless (openLog()) {
    my $err = "rotate: create $path: $!";
    rename($name, $path); # keep writing to the file under its own name
    return $err;
  }
  close($old);
  my @names = rotated();
  while (@names > $maxFiles - 1) {
    my $victim = shift @names;
    unlink("$dir/$victim") or report("rotate: remove $dir/$victim: $!");
  }
  return '';
}

# What could not be written since the last successful write.
my ($lostLines, $lostBytes, $lostWhy, $reportedAt) = (0, 0, '', 0);

# Writes $data[$off, $off+$len) whole, or truncates back to the last whole record and fails.
sub writeAll {
  my ($data, $off, $len) = @_;
  my $end = $off + $len;
  my $whole = $size; # where the last whole record ends
  while ($off < $end) {
    my $n = syswrite($log, $data, $end - $off, $off);
    if (!defined $n) {
      next if $!{EINTR};
      my $err = "$!";
      # A half-written record would merge with the next one: take back what this call wrote.
      truncate($log, $whole);
      $size = $whole;
      return $err;
    }
    $off += $n;
    $size += $n;
  }
  return '';
}

# When rotating last failed: rotation waits 10 s then (the file grows meanwhile, output is kept).
my $rotateFailedAt = -10;

# Appends whole records, rotating between records so no file grows past max-size (a single
# record longer than max-size gets a file of its own). Returns an error ('' if none) and how
# many bytes of $data were written.
sub append {
  my ($data) = @_;
  my $off = 0;
  my $end = length $data;
  while ($off < $end) {
    my $len = $end - $off;
    if ($maxSize > 0 && $size + $len > $maxSize && time() - $rotateFailedAt >= 10) {
      my $nl = rindex($data, "\n", $off + $maxSize - $size - 1);
      if ($nl >= $off) {
        $len = $nl + 1 - $off;
      } elsif ($size > 0) {
        my $err = rotate();
        if ($err ne '') {
          report($err);
          $rotateFailedAt = time();
        }
        next;
      } else {
        my $e = index($data, "\n", $off);
        $len = ($e < 0 ? $end : $e + 1) - $off;
      }
    }
    my $err = writeAll($data, $off, $len);
    return ($err, $off) if $err ne '';
    $off += $len;
  }
  return ('', $off);
}

sub put {
  my ($data, $ts) = @_;
  my $marker = $lostBytes > 0 ? "$ts stderr F [skiff logger: $lostLines lines ($lostBytes bytes) of output lost: $lostWhy]\n" : '';
  my ($err, $done) = append($marker . $data);
  my ($s) = now();
  if ($err eq '') {
    report("writing again; $lostLines lines ($lostBytes bytes) were lost: $lostWhy") if $marker ne '';
    ($lostLines, $lostBytes, $lostWhy) = (0, 0, '');
    return;
  }
  my $first = $lostBytes == 0;
  if ($marker ne '' && $done >= length $marker) {
    # The marker made it: the log tells of the earlier loss; count from here.
    ($lostLines, $lostBytes, $first) = (0, 0, 1);
  }
  my $lost = substr($marker . $data, $done >= length $marker ? $done : length $marker);
  $lostLines += ($lost =~ tr/\n//);
  $lostBytes += length $lost;
  $lostWhy = $err;
  # Once when writing starts to fail, then at most every 10 s while it keeps failing.
  if ($first || $s - $reportedAt >= 10) {
    report("write failed ($err): $lostLines lines ($lostBytes bytes) of output lost so far");
    $reportedAt = $s;
  }
}

# ---- the loop: select on both pipes, one record per line, one append per read ----------------
my @name = ('stdout', 'stderr');
my @fd = (3, 4);
my @in;
open($in[0], '<&=', 3) or die "skiff logger: fd 3: $!\n";
open($in[1], '<&=', 4) or die "skiff logger: fd 4: $!\n";
my @open = (1, 1);
my @pend = ('', '');
my @pendAt = (0, 0);
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
        while ($end - $at >= $maxLine && ($nl < 0 || $end - $at > $maxLine)) {
          $out .= "$ts $name[$i] P " . substr($data, $at, $maxLine) . "\n";
          $at += $maxLine;
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
  put($out, $ts) if $out ne '';
}
