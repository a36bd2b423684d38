# qtc-cli 0.5.0 (2015) calls File.exists?, which Ruby 3.2 removed (Debian 12's Ruby 3.1 still has it, with a
# deprecation). Loaded with `ruby -r` before the client so that it also runs on a newer Ruby; it defines nothing
# where the method exists. The vendored code itself is not edited.
class File
  class << self
    alias_method :exists?, :exist? unless method_defined?(:exists?)
  end
end
