#pragma once
// HTML → readable plain text, for mail with only an HTML body and pages the agent fetches.
// Written by hand (no HTML library): the output is for an agent to read, not a rendering.

#include <string>
#include <string_view>

namespace sb {

// Converts an HTML document or fragment to UTF-8 text: script, style, head, title and hidden
// (display:none) elements are dropped; block elements and <br> become line breaks,
// paragraphs a blank line; list items start with "- " (or "1. " in ordered lists); links
// read "text (url)" when the text is not the url itself; images show their alt text;
// <pre> keeps its whitespace; blockquotes are prefixed with "> "; entities are decoded;
// other whitespace is collapsed. Never fails: hostile input (unclosed tags, deep nesting,
// huge attributes) is handled in time linear in its size without recursion. Input is
// expected as UTF-8; invalid bytes pass through unchanged (the caller sanitises).
// Thread-safe (no shared state).
std::string html_to_text(std::string_view html);

// Decodes HTML character references: the common named ones (&amp; &nbsp; &eacute; &euro;
// …) and numeric ones (&#233; &#xE9;). Unknown or malformed references are kept as they
// are; invalid code points become U+FFFD. Thread-safe.
std::string decode_html_entities(std::string_view text);

// `&`, `<`, `>` and `"` as entities: text made safe inside XML or HTML elements and quoted
// attribute values.
std::string escape_xml(std::string_view text);

}  // namespace sb
