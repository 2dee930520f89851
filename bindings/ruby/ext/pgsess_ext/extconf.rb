# frozen_string_literal: true

# Builds PGSess::Ext (pgsess_ext.c), the binding's optional C accelerator: `gem install` runs
# this. It needs Ruby's headers (Debian: ruby-dev) and a C compiler, not libpgsess: the binding
# hands it the library's functions at run time. Where either is missing the gem still installs,
# without the accelerator (an empty Makefile), and runs in pure Ruby: PGSess.accelerated? is
# false.
def skip_accelerator(why)
  warn "pgsess: building without the C accelerator: #{why}"
  File.write("Makefile", "all install clean distclean static:\n\t@:\n")
  exit 0
end

begin
  require "mkmf"
rescue SystemExit, LoadError => e
  skip_accelerator("no Ruby headers (#{e.message.lines.first&.strip})")
end
skip_accelerator("no working C compiler") unless try_compile("int main(void) { return 0; }")

$CFLAGS << " -std=c99 -Wall -Wextra -Wno-unused-parameter -O2"
create_makefile("pgsess/pgsess_ext")
