# The README shows samples verbatim: fails when one of them is not found there.
#   cmake -DREADME=README.md -DFILES="a.cpp;b.cpp" -DMAIN_OF="c.cpp" -P readme_check.cmake
# FILES must appear whole; MAIN_OF from its "int main(" to its end.
cmake_minimum_required(VERSION 3.25)
file(READ ${README} readme)
foreach(sample IN LISTS FILES MAIN_OF)
  file(READ ${sample} text)
  if(sample IN_LIST MAIN_OF)
    string(FIND "${text}" "int main(" start)
    string(SUBSTRING "${text}" ${start} -1 text)
  endif()
  string(FIND "${readme}" "${text}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "${README} does not show ${sample} as it is; copy it again")
  endif()
  message(STATUS "${README} shows ${sample}")
endforeach()
