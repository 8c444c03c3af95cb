-- docs/MODULE.md -> Kamailio's module DocBook (sipsd_admin.xml), run by ./generate.
--
-- pandoc turns the Markdown into DocBook 4; this filter applies the conventions of Kamailio's
-- module docs (src/modules/*/doc/*_admin.xml) so the README Kamailio's stylesheets make from it
-- reads like every other module's:
--   * "##" headings are the chapter's sections, "###" their subsections;
--   * the title and the lines before the first section, and "Table of Contents", are left to
--     sipsd.xml and to the stylesheets (which number sections and build the tables of contents
--     themselves): the "N." / "N.M." prefixes of the Markdown headings are dropped;
--   * a parameter heading names its parameter as <varname>, a function or RPC heading its
--     function as <function>, a pseudo-variable heading its variable as <varname>, each section
--     with an id sipsd.p.NAME / sipsd.f.NAME / sipsd.r.NAME / sipsd.v.NAME;
--   * a code block under a parameter, function or RPC command is an <example> titled
--     "Set NAME parameter" / "NAME usage", as in Kamailio's docs;
--   * "Default value: ..." paragraphs are emphasised;
--   * two-column tables (name | meaning) become variable lists, which the text README shows
--     as a term with its indented description (lynx flattens table cells into one line).

local kinds = {
  ["Parameters"] = { tag = "varname", id = "p", example = "Set %s parameter" },
  ["Functions"] = { tag = "function", id = "f", example = "%s usage" },
  ["Pseudo-Variables"] = { tag = "varname", id = "v", example = "%s usage" },
  ["RPC Commands"] = { tag = "function", id = "r", example = "%s usage" },
}

local function xml_escape(s)
  return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

-- "3.1." or "10." at the start of a heading
local function drop_number(inlines)
  if #inlines > 0 and inlines[1].t == "Str" and inlines[1].text:match("^%d+%.[%d%.]*$") then
    inlines:remove(1)
    if #inlines > 0 and inlines[1].t == "Space" then
      inlines:remove(1)
    end
  end
  return inlines
end

local function markup(kind, name)
  local attr = kind.tag == "function" and ' moreinfo="none"' or ""
  return string.format("<%s%s>%s</%s>", kind.tag, attr, xml_escape(name), kind.tag)
end

local function cell_inlines(cell)
  local blocks = pandoc.List(cell)
  if #blocks == 1 and (blocks[1].t == "Plain" or blocks[1].t == "Para") then
    return blocks[1].content
  end
  return pandoc.List({ pandoc.Str(pandoc.utils.stringify(blocks)) })
end

local function two_columns_as_list(tbl)
  local simple = pandoc.utils.to_simple_table(tbl)
  if #simple.headers ~= 2 then
    return tbl
  end
  local items = pandoc.List()
  for _, row in ipairs(simple.rows) do
    items:insert({ cell_inlines(row[1]), { pandoc.List({ pandoc.Plain(cell_inlines(row[2])) }) } })
  end
  return pandoc.DefinitionList(items)
end

function Pandoc(doc)
  local out = pandoc.List()
  local started, skipping = false, false
  local kind, name = nil, nil
  for _, b in ipairs(doc.blocks) do
    local level = b.t == "Header" and b.level or nil
    if level then
      -- the chapter is the document's "#"; its "##" are the chapter's sections
      b.level = math.max(level - 1, 1)
    end
    if level == 2 then
      started = true
      b.content = drop_number(b.content)
      local title = pandoc.utils.stringify(b.content)
      skipping = (title == "Table of Contents")
      kind, name = kinds[title], nil
      b.identifier = ""
    elseif level == 3 then
      b.content = drop_number(b.content)
      b.identifier = ""
      name = nil
      local first = b.content[1]
      if kind and first and (first.t == "Str" or first.t == "Code") then
        name = first.text
        b.content[1] = pandoc.RawInline("docbook", markup(kind, name))
        b.identifier = "sipsd." .. kind.id .. "." .. name:gsub("%.", "_"):gsub("[^%w_]", "")
      end
    elseif level then
      b.content = drop_number(b.content)
      b.identifier = ""
    end
    if started and not skipping then
      if b.t == "CodeBlock" then
        local listing = '<programlisting format="linespecific">\n' .. xml_escape(b.text)
          .. "\n</programlisting>"
        if kind and name then
          local title = string.format(kind.example, markup(kind, name))
          listing = "<example>\n<title>" .. title .. "</title>\n" .. listing .. "\n</example>"
        end
        out:insert(pandoc.RawBlock("docbook", listing))
      elseif b.t == "Table" then
        out:insert(two_columns_as_list(b))
      elseif b.t == "Para" and pandoc.utils.stringify(b.content):match("^Default value") then
        out:insert(pandoc.Para({ pandoc.Emph(b.content) }))
      else
        out:insert(b)
      end
    end
  end
  return pandoc.Pandoc(out, doc.meta)
end
