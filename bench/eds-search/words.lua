-- The words of the search data set (bench/run-eds-search.sh), the same as parse-load.sql spells them: word j of
-- the vocabulary (0..10006) is "q" and j in three base-26 letters; object i holds the four words
-- (i * M) % 10007 for M in MULTIPLIERS, so each word is in about 400 objects of a million.
local words = {}
words.VOCABULARY = 10007
words.MULTIPLIERS = { 7919, 7927, 7933, 7937 }

function words.word(j)
  local a, b, c = math.floor(j / 676) % 26, math.floor(j / 26) % 26, j % 26
  return "q" .. string.char(97 + a, 97 + b, 97 + c)
end

function words.of(i)
  local list = {}
  for t, m in ipairs(words.MULTIPLIERS) do list[t] = words.word((i * m) % words.VOCABULARY) end
  return list
end

return words
