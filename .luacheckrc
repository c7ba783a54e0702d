std = "max"
max_line_length = 130
files["spec"] = { std = "+busted" }
files["spec/support/fake"] = { globals = { "ngx" } }
