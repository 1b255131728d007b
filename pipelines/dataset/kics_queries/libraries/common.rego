# Helper library for tfpredict's KICS-style queries (package generic.common, imported as common_lib).
# Written for this project in the Rego subset regopy (rego-cpp) evaluates: no `some ... in` with walk,
# no `every`, no `x[_]` inside a call's arguments (bind it first: `v := x[_]; f(v)`).
# Real KICS's assets/libraries/common.rego does not compile there.
package generic.common

# valid_key(obj, key): obj has key and its value is not null.
valid_key(obj, key) {
	_ = obj[key]
	not is_null(obj[key])
}

# emptyOrNull(value): value is null or the empty string.
emptyOrNull(value) {
	is_null(value)
}

emptyOrNull(value) {
	value == ""
}

# as_array(value): value itself when it is an array, else [value] (a single nested block is an object).
as_array(value) = value {
	is_array(value)
} else = [value]

# inArray(list, item): item is one of list's elements.
inArray(list, item) {
	list[_] == item
}

# is_unrestricted(cidr): the CIDR (or Azure address prefix) means "any source".
is_unrestricted(cidr) {
	unrestricted := {"0.0.0.0/0", "::/0", "*", "Internet", "Any", "any", "internet"}
	unrestricted[cidr]
}

# build_search_line(path, obj): the JSON path used as a result's searchLine (items as strings).
build_search_line(path, obj) = resolved {
	first := [x | item := path[_]; x := sprintf("%v", [item])]
	rest := [y | item := obj[_]; y := sprintf("%v", [item])]
	resolved := array.concat(first, rest)
}

# is_true(value) / is_false(value): booleans as Terraform writes them (true, "true").
is_true(value) {
	value == true
}

is_true(value) {
	lower(sprintf("%v", [value])) == "true"
}

is_false(value) {
	value == false
}

is_false(value) {
	lower(sprintf("%v", [value])) == "false"
}
