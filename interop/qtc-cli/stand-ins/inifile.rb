# A stand-in for the `inifile` gem (a runtime dependency of qtc-sdk 0.5.0), which Debian does not package and
# this machine cannot fetch from RubyGems. It implements only what qtc-cli calls, with the gem's behaviour:
#
#   IniFile.load(filename)      -> an IniFile, or nil when the file does not exist
#   IniFile.new                 -> an empty one
#   ini['section']              -> that section's Hash; a missing section is created empty (the gem does the same)
#   ini['section'] = {...}      -> replaces a section
#   ini.save(filename: path)    -> writes "[section]\nkey = value" lines
#
# Parsing follows the gem's defaults: `[section]` headers, `key = value` (split at the first '='), lines starting
# with ';' or '#' are comments, surrounding whitespace and double quotes are removed, and values that read as
# true/false, integers or floats become those types. Not implemented: continuation lines, escapes, a global
# section, merge, each/each_section and the other gem methods qtc-cli never calls.
class IniFile
  attr_accessor :filename

  def self.load(filename, opts = {})
    return nil unless File.file?(filename)
    new(opts.merge(filename: filename))
  end

  def initialize(opts = {})
    @filename = opts[:filename]
    @ini = Hash.new { |hash, section| hash[section] = {} }
    parse(File.read(@filename)) if @filename && File.file?(@filename)
  end

  def [](section)
    return nil if section.nil?
    @ini[section.to_s]
  end

  def []=(section, value)
    @ini[section.to_s] = value
  end

  def has_section?(section)
    @ini.key?(section.to_s)
  end

  def sections
    @ini.keys
  end

  def to_h
    @ini.dup
  end

  def to_s
    @ini.map do |section, params|
      lines = ["[#{section}]"]
      params.each { |key, value| lines << "#{key} = #{value}" }
      lines.join("\n") + "\n"
    end.join("\n")
  end

  def save(opts = {})
    filename = opts.fetch(:filename, @filename)
    raise ArgumentError, 'no filename to save to' if filename.nil?
    File.write(filename, to_s)
    @filename = filename
    self
  end

  private

  def parse(text)
    section = nil
    text.each_line do |raw|
      line = raw.strip
      next if line.empty? || line.start_with?(';', '#')
      if (m = line.match(/\A\[\s*([^\]]+?)\s*\]\z/))
        section = m[1]
        @ini[section]
        next
      end
      key, value = line.split('=', 2)
      raise "#{@filename}: a parameter outside a section: #{line}" if section.nil?
      raise "#{@filename}: not a key = value line: #{line}" if value.nil?
      @ini[section][key.strip] = typecast(unquote(value.strip))
    end
  end

  def unquote(value)
    value.match(/\A"(.*)"\z/m) ? Regexp.last_match(1) : value
  end

  def typecast(value)
    case value
    when /\Atrue\z/i then true
    when /\Afalse\z/i then false
    when /\A\s*\z/ then nil
    when /\A-?\d*\.\d+\z/ then Float(value)
    when /\A-?[1-9]\d*\z|\A0\z/ then Integer(value)
    else value
    end
  end
end
